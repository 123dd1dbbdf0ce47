/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * mdt.h -- the ONE header shared by the BPF program (bpf/mdt.bpf.c) and the
 * Rust side. Rust never copies these definitions by hand: libbpf-cargo
 * generates them from the BPF object's BTF into the skeleton's `types`
 * module (src/probes/skel.rs re-exports it). Every struct here has explicit
 * padding, so its layout is the same in C and in the generated Rust
 * (#[repr(C)]), and the sizes are pinned by _Static_assert below and by
 * const assertions in src/probes/mod.rs.
 *
 * Only types that appear in the object's BTF reach Rust; mdt.bpf.c keeps
 * an "anchor" global for each of them (see "BTF anchors" there). Plain
 * #defines never reach Rust: shared constants are enum members instead.
 */
#ifndef __MDT_H
#define __MDT_H

/* Sizes shared with Rust (Rust: types::mdt_limits::MDT_MAX_KEY_BYTES etc.). */
enum mdt_limits {
	/* Key bytes an event can hold (mdt_config.key_bytes picks how many are
	 * copied, default 64); longer keys are truncated. */
	MDT_MAX_KEY_BYTES = 256,
	/* User stack frames (return addresses) an event can hold. */
	MDT_MAX_STACK_DEPTH = 128,
	/* At most this many bytes of goroutine stack are copied at once by
	 * the frame-pointer walk: following the chain in a copy costs one
	 * user-memory read per chunk instead of one per frame. The copy runs
	 * from SP to the goroutine's stack top (g.stack.hi) when that is
	 * closer, so most stacks take one read. A power of two. */
	MDT_STACK_CHUNK = 8192,
	/* Bytes of runtime.g read at once: g.stack.lo/hi (offsets 0 and 8),
	 * the goid and the pprof labels pointer (mdt_config.goid_offset and
	 * labels_offset < this), in one read. */
	MDT_G_HEAD_BYTES = 512,
	/* Attach points per loaded program: probe ids (the attach cookies)
	 * are < MDT_MAX_PROBES. */
	MDT_MAX_PROBES = 64,
	/* Site counting: functions that delete on behalf of their caller
	 * (reflect's map functions, maps.DeleteFunc) known to the program
	 * (mdt_machinery), and how many of their frames it steps over to find
	 * the code that asked for the delete. */
	MDT_MAX_MACHINERY = 16,
	MDT_MAX_CALLER_HOPS = 4,
	/* Record mode: slots of the kernel's memory of stacks already sent
	 * (a power of two). */
	MDT_SENT_STACKS = 4096,
	/* Latency: upper bounds of the histogram's buckets (set by user space
	 * in mdt_latency_bounds, nanoseconds, ascending); the last bucket,
	 * MDT_LATENCY_BOUNDS, counts the rest. */
	MDT_LATENCY_BOUNDS = 22,
	MDT_LATENCY_BUCKETS = MDT_LATENCY_BOUNDS + 1,
	/* Keys passed by pointer: the strings and interfaces inside a key
	 * whose bytes (or value) are copied from behind their pointers, at
	 * most (the key type's "plan", made once per map type by walking its
	 * descriptors, at most MDT_PLAN_STEPS of them, nesting at most
	 * MDT_PLAN_STACK deep). */
	MDT_KEY_SLOTS = 8,
	MDT_PLAN_STEPS = 96,
	MDT_PLAN_STACK = 24,
	/* Goroutine labels (runtime/pprof): at most MDT_MAX_LABELS of them per
	 * record, each value cut at mdt_config.label_bytes and each key at
	 * MDT_MAX_LABEL_BYTES; MDT_LABEL_AREA bytes hold them all. A
	 * classic-map label set (Go <= 1.23) is read from at most
	 * MDT_MAX_LABEL_BUCKETS buckets, overflow buckets included. */
	MDT_MAX_LABELS = 16, /* a power of two */
	MDT_MAX_LABEL_BYTES = 128,
	MDT_LABEL_AREA = MDT_MAX_LABELS * (4 + 2 * MDT_MAX_LABEL_BYTES),
	MDT_MAX_LABEL_BUCKETS = 8,
	/* --labels KEY,...: keys the probe keeps (by length and first bytes). */
	MDT_MAX_LABEL_KEYS = 8,
	/* Crash forensics: bytes of a fatal error's message a record holds. */
	MDT_MAX_FATAL_MSG = 128,
	/* Crash forensics: the kernel counts deletes and clears per CPU by
	 * time, in buckets of about 4 ms, the last MDT_WINDOW_BUCKETS of them
	 * (over a second): the counts of any window up to a second before a
	 * crash, exactly. A bucket is 2^mdt_config.tick_shift jiffies (the
	 * kernel's tick, read from a variable); where user space does not
	 * know the tick's length, 2^MDT_WINDOW_SHIFT ns (4.19 ms) of the
	 * monotonic clock, which costs a clock read per hit. */
	MDT_WINDOW_SHIFT = 22,
	MDT_WINDOW_BUCKETS = 256, /* a power of two */
	/* CPUs whose window counts a fatal probe sums, at most. */
	MDT_MAX_CPUS = 4096,
};

/*
 * Go ABI facts the program reads target memory by (internal/abi/type.go,
 * the same in Go 1.17 to 1.27; see docs/go-runtime.md). Their one home is
 * src/gobin/abi.rs, which the Rust side checks these against when it is
 * compiled (src/probes/mod.rs).
 */
enum mdt_go_abi {
	/* abi.Type.Size_, PtrBytes (0: no pointers), TFlag and Kind_ */
	MDT_GO_TYPE_SIZE = 0,
	MDT_GO_TYPE_PTRBYTES = 8,
	MDT_GO_TYPE_TFLAG = 20,
	MDT_GO_TYPE_KIND = 23,
	/* sizeof(abi.Type): the kind-specific fields follow */
	MDT_GO_TYPE_HEADER = 48,
	/* the bits of Kind_ that hold the kind, and the kinds read here */
	MDT_GO_KIND_MASK = 0x1f,
	MDT_GO_KIND_ARRAY = 17,
	MDT_GO_KIND_INTERFACE = 20,
	MDT_GO_KIND_STRING = 24,
	MDT_GO_KIND_STRUCT = 25,
	/* a value stored in an interface's data word itself: bit 5 of Kind_
	 * up to Go 1.25 (KindDirectIface), of TFlag from 1.26
	 * (TFlagDirectIface); the other bit is 0 in either */
	MDT_GO_DIRECT_IFACE = 0x20,
	/* the key *abi.Type in a map type (mdt_config.key_type_offset) */
	MDT_GO_MAPTYPE_KEY = 48,
	/* abi.ArrayType.Elem and Len */
	MDT_GO_ARRAYTYPE_ELEM = 48,
	MDT_GO_ARRAYTYPE_LEN = 64,
	/* abi.StructType.Fields, a []abi.StructField of {Name, Typ, Offset} */
	MDT_GO_STRUCTTYPE_FIELDS = 56,
	MDT_GO_STRUCTFIELD_TYP = 8,
	MDT_GO_STRUCTFIELD_OFFSET = 16,
	MDT_GO_STRUCTFIELD_SIZE = 24,
	/* abi.InterfaceType.Methods (a slice: empty for interface {}) */
	MDT_GO_INTERFACETYPE_METHODS = 56,
	/* abi.ITab.Type: the dynamic type behind a non-empty interface's
	 * first word */
	MDT_GO_ITAB_TYPE = 8,
	/* the data word of an interface value; the length of a slice and of
	 * a string header (their pointer is at 0) */
	MDT_GO_IFACE_DATA = 8,
	MDT_GO_SLICE_LEN = 8,
	MDT_GO_STRING_LEN = 8,
	/* A label set as Go <= 1.23 stores it (runtime/pprof.labelMap, a
	 * map[string]string): the classic map header's B (log2 of the bucket
	 * count) and buckets pointer, and a bucket of map[string]string: 8
	 * tophash bytes, 8 keys, 8 values, the overflow pointer; a slot holds
	 * an entry iff its tophash is at least MDT_GO_MIN_TOPHASH. */
	MDT_GO_HMAP_B = 9,
	MDT_GO_HMAP_BUCKETS = 16,
	MDT_GO_HMAP_OLDBUCKETS = 24,
	MDT_GO_LABEL_BUCKET_KEYS = 8,
	MDT_GO_LABEL_BUCKET_VALUES = 136,
	MDT_GO_LABEL_BUCKET_OVERFLOW = 264,
	MDT_GO_LABEL_BUCKET_SIZE = 272,
	MDT_GO_MIN_TOPHASH = 5,
	/* From Go 1.24, a sorted slice of {key, value string}. */
	MDT_GO_LABEL_SIZE = 32,
};

/* How the goroutine's pprof labels are stored (mdt_config.label_store). */
enum mdt_label_store {
	/* No labels read (runtime/pprof is not linked, or --no-labels). */
	MDT_LABELS_NONE = 0,
	/* g.labels -> *labelMap -> classic map[string]string (Go <= 1.23). */
	MDT_LABELS_MAP = 1,
	/* g.labels -> *labelMap = {[]label} (Go 1.24+). */
	MDT_LABELS_SLICE = 2,
};

/*
 * How the Go register arguments are laid out at an attach point (amd64
 * ABIInternal, valid at the function entry and at the first instruction
 * after the stack-check branch; see docs/go-runtime.md).
 * arg0..arg3 are AX, BX, CX, DI on amd64 and X0..X3 on arm64.
 */
enum mdt_kind {
	/* Not configured: the hit is counted, no event is emitted. */
	MDT_KIND_UNSET = 0,
	/* runtime.mapdelete, reflect.mapdelete(t, m, key *K):
	 * arg0 = map type, arg1 = map, arg2 = pointer to the key. */
	MDT_KIND_KEY_PTR = 1,
	/* runtime.mapdelete_fast32(t, m, key uint32): arg2 low 32 bits = key. */
	MDT_KIND_FAST32 = 2,
	/* runtime.mapdelete_fast64(t, m, key uint64): arg2 = key. */
	MDT_KIND_FAST64 = 3,
	/* runtime.mapdelete_faststr(t, m, key string), reflect.mapdelete_faststr:
	 * arg2 = key data pointer, arg3 = key length. */
	MDT_KIND_FASTSTR = 4,
	/* runtime.mapclear, reflect.mapclear(t, m): no key. */
	MDT_KIND_CLEAR = 5,
	/* internal/runtime/maps.(*Map).Delete(m, t, key *K) (Go 1.24+):
	 * receiver first: arg0 = map, arg1 = map type, arg2 = &key. */
	MDT_KIND_SWISS_DELETE = 6,
	/* internal/runtime/maps.(*Map).Clear(m, t) (Go 1.24+): arg0 = map,
	 * arg1 = map type. */
	MDT_KIND_SWISS_CLEAR = 7,
	/* An exit point of a probed function (the last instruction of each
	 * return path to probe, found from its machine code; never a
	 * uretprobe): mdt_probe_cfg.entry names the function's entry probe. */
	MDT_KIND_EXIT = 8,
};

/* Bits of mdt_event.flags. */
enum mdt_event_flags {
	/* The key is longer than MDT_MAX_KEY_BYTES: key[] holds its first
	 * MDT_MAX_KEY_BYTES bytes, key_len the full length. */
	MDT_EV_KEY_TRUNCATED = 1,
	/* Reading the key bytes (or the key type's size) from user memory
	 * failed (e.g. page not resident): key[] is zero. */
	MDT_EV_KEY_FAULT = 2,
	/* Reading the map's element count failed: map_len is 0. */
	MDT_EV_LEN_FAULT = 4,
	/* Reading the goroutine id failed (or goid_offset is 0): goid is 0. */
	MDT_EV_GOID_FAULT = 8,
	/* The frame-pointer walk stopped at MDT_MAX_STACK_DEPTH (or at
	 * mdt_config.max_stack_depth) before reaching the outermost frame. */
	MDT_EV_STACK_TRUNCATED = 16,
	/* A key passed by pointer whose type is a string: key[] holds the
	 * string's bytes and key_len its length (not the 16-byte header). */
	MDT_EV_KEY_STRING = 32,
	/* The record carries no stack words: its stack (stack_depth entries)
	 * is the one of an earlier record with the same stack_id. */
	MDT_EV_STACK_KNOWN = 64,
	/* Set by user space, never by the program: the record named a stack
	 * (MDT_EV_STACK_KNOWN) that user space no longer holds, so it is
	 * delivered without one (stack_depth 0); see src/probes/stacks.rs. */
	MDT_EV_STACK_LOST = 128,
};

/* Slots of the per-CPU "stats" array (health counters, summed over CPUs). */
enum mdt_stat {
	/* bpf_ringbuf_reserve failed: the event was LOST (hit still counted). */
	MDT_STAT_RINGBUF_FULL = 0,
	/* Hits that passed sampling (a record or a stack count follows), when
	 * sampling (sample_threshold < 2^32). Counted on this side, not on the
	 * sampled-out side, to keep the path most deletes take under --sample
	 * as short as possible: user space derives sampled out = hits -
	 * sampled in. */
	MDT_STAT_SAMPLED_IN = 1,
	/* No probe id for the hit (attach cookie >= MDT_MAX_PROBES, or a pc
	 * unknown to mdt_probe_by_pc), or probe kind MDT_KIND_UNSET: not
	 * counted as a hit, no record (a health counter: cannot happen). */
	MDT_STAT_BAD_PROBE = 2,
	/* Events submitted to the ring buffer. */
	MDT_STAT_SUBMITTED = 3,
	/* Aggregation mode: a new stack or (stack, map type) pair did not fit
	 * in the "stack_counts" / "stacks" maps: that hit is LOST for the
	 * flame graph (the hit counters still have it). */
	MDT_STAT_AGG_FULL = 4,
	/* Site counting (mdt_config.count_sites): a new (map type, caller,
	 * probe) did not fit in the "site_counts" map: the hit is counted here
	 * instead (the hit counters still have it). */
	MDT_STAT_SITES_FULL = 5,
	/* Latency: an exit with no pending entry (the call began before the
	 * exit probes were armed, or its entry was evicted from "pending"):
	 * no outcome for that call. */
	MDT_STAT_EXIT_UNMATCHED = 6,
	/* Latency: an entry found its goroutine's previous call of the same
	 * function still pending: that call never returned (it panicked out
	 * of the runtime, say). */
	MDT_STAT_PENDING_REPLACED = 7,
	/* Latency: a new (map type, probe) did not fit in "latency": that
	 * call's duration is in the per-probe totals only. */
	MDT_STAT_LATENCY_FULL = 8,
	/* Latency: exit records (struct mdt_exit) put in the ring buffer, and
	 * the ones that did not fit (their entry's record is then written
	 * without its outcome). Apart from the event records' counts: an exit
	 * is not a delete. */
	MDT_STAT_EXITS_SENT = 9,
	MDT_STAT_EXITS_LOST = 10,
	/* Crash forensics: a fatal record that did not fit in "fatals" (the
	 * process was then not stopped either). */
	MDT_STAT_FATALS_LOST = 11,
	/* Number of slots (size of the "stats" array). */
	MDT_STAT__COUNT = 12,
};

/*
 * One map-delete (or map-clear) event. 8-byte aligned, no implicit padding.
 *
 * A ring buffer record is this struct cut short: the fixed part (up to
 * `stack`), then the stack words -- stack_depth of them, or none with
 * MDT_EV_STACK_KNOWN (each distinct stack is sent once) -- and right after
 * them the key bytes that were copied (the rest of the record). User space
 * puts the pieces back in place.
 */
struct mdt_event {
	/* bpf_ktime_get_ns() at the probe: CLOCK_MONOTONIC, nanoseconds. */
	__u64 ts_ns;
	/* Process id (tgid) as seen from the initial pid namespace. */
	__u32 pid;
	/* Thread id as seen from the initial pid namespace. */
	__u32 tid;
	/* Goroutine id, read at g + mdt_config.goid_offset; 0 if unknown
	 * (then MDT_EV_GOID_FAULT is set). */
	__u64 goid;
	/* Hash of stack[0..stack_depth): names the stack in records that
	 * omit it (MDT_EV_STACK_KNOWN). */
	__u64 stack_id;
	/* Go map type descriptor (*maptype <=1.23, *abi.SwissMapType 1.24-1.25,
	 * *abi.MapType 1.26+): resolve to a type name in user space. */
	__u64 map_type_ptr;
	/* The map (*hmap / *maps.Map); 0 for a nil map. */
	__u64 map_ptr;
	/* Element count of the map at the probe (first 8 bytes of *map in every
	 * Go version); 0 for a nil map. */
	__u64 map_len;
	/* FAST32: the key zero-extended from its low 32 bits; FAST64: the key;
	 * FASTSTR: address of the string data; KEY_PTR / SWISS_DELETE: address
	 * of the key; CLEAR kinds: 0. */
	__u64 key_u64;
	/* Full key length in bytes: 4 (FAST32), 8 (FAST64), the string length
	 * (FASTSTR), the key type's size (KEY_PTR / SWISS_DELETE), 0 (CLEAR). */
	__u32 key_len;
	/* The probe id of the attach point that fired (index into the hit
	 * counters and into mdt_config.probes). */
	__u32 probe_id;
	/* enum mdt_kind of that probe. */
	__u8 kind;
	/* enum mdt_event_flags bits. */
	__u8 flags;
	/* Number of valid entries in stack[]. */
	__u16 stack_depth;
	/* 1 = the exit probes were armed at this call's entry: a struct
	 * mdt_exit with the same goid, probe_id and ts_ns follows when the call
	 * returns. */
	__u8 exit_expected;
	/* Key parts (struct mdt_key_part) that follow the key bytes: what was
	 * copied from behind the pointers inside the key (strings' bytes,
	 * interfaces' values), right at the delete. */
	__u8 key_parts;
	/* With key_parts: the key bytes copied into key[] (the parts start
	 * there). */
	__u16 key_n;
	/* The goroutine's pprof labels in the record (struct mdt_label each,
	 * the last labels_n bytes of the record), and enum mdt_labels_flags. */
	__u8 labels;
	__u8 labels_flags;
	__u16 labels_n;
	/* Crash forensics: the bucket this hit was counted in by time (its
	 * low 32 bits; see mdt_window). */
	__u32 tick;
	/* User stack, innermost first: stack[0] = the probed instruction,
	 * stack[1] = return address into the caller, then the frame-pointer
	 * chain. Runtime (not file) addresses. */
	__u64 stack[MDT_MAX_STACK_DEPTH];
	/* The first min(key_len, mdt_config.key_bytes) bytes of the key, as
	 * laid out in the target's memory (for MDT_EV_KEY_STRING: the string's
	 * bytes), then key_parts parts; key bytes and parts together are at
	 * most mdt_config.key_bytes. The rest is undefined. */
	__u8 key[MDT_MAX_KEY_BYTES];
	/* Room for the labels when the key and the stack fill theirs: a
	 * record's labels come right after its key bytes, wherever those end. */
	__u8 label_room[MDT_LABEL_AREA];
};

/*
 * One goroutine label (unaligned, in the last labels_n bytes of a record):
 * this header, then key_len bytes of its key and value_len of its value.
 */
struct mdt_label {
	__u8 key_len;
	__u8 value_len;
	/* enum mdt_label_flags. */
	__u8 flags;
	__u8 __pad;
};

enum mdt_label_flags {
	/* The key is longer than MDT_MAX_LABEL_BYTES / the value than
	 * label_bytes: cut there. */
	MDT_LABEL_KEY_CUT = 1,
	MDT_LABEL_VALUE_CUT = 2,
	/* Reading its bytes failed: the lengths are 0. */
	MDT_LABEL_FAULT = 4,
};

enum mdt_labels_flags {
	/* The goroutine had more labels than the record holds (more than
	 * MDT_MAX_LABELS, or in map buckets past MDT_MAX_LABEL_BUCKETS, or not
	 * yet moved to the map's new buckets while it grew). */
	MDT_LABELS_MORE = 1,
	/* Reading the label set failed. */
	MDT_LABELS_FAULT = 2,
};

/*
 * One part of a key (after its bytes in mdt_event.key, unaligned): the
 * bytes behind one pointer inside the key, copied at the delete (later
 * they may be freed, or reused). Strings and interfaces are found in the
 * key type by a walk of its descriptors (struct fields, array elements),
 * in offset order, at most MDT_KEY_SLOTS of them; each gets a part while
 * the key bytes hold its header and there is room (8 bytes and more). A
 * nil interface and a value stored in the interface's data word (pointers)
 * get none; nothing behind the pointers of an interface's value is
 * followed.
 */
struct mdt_key_part {
	/* Where the string header or the interface is in the key. */
	__u16 offset;
	/* enum mdt_key_part_kind. */
	__u8 kind;
	/* enum mdt_key_part_flags. */
	__u8 flags;
	/* Bytes that follow this header. */
	__u16 len;
	/* All of them: the string's length, the value type's size (at most
	 * 0xffff: more is said as 0xffff). len < full: cut short. */
	__u16 full;
};

enum mdt_key_part_kind {
	/* The bytes of the string whose header is at offset. */
	MDT_PART_STRING = 1,
	/* The value behind the data word of the interface at offset. */
	MDT_PART_VALUE = 2,
	/* The same, of a string: that string's bytes. */
	MDT_PART_VALUE_STRING = 3,
};

enum mdt_key_part_flags {
	/* Reading the bytes (or the dynamic type) failed: len is 0. */
	MDT_PART_FAULT = 1,
};

/*
 * The record of a call's return (a ring buffer record of exactly this size;
 * event records are longer), sent when its entry sent a record with
 * exit_expected. User space joins the two by (goid, probe_id, entry_ts_ns).
 */
struct mdt_exit {
	/* bpf_ktime_get_ns() at the exit probe. */
	__u64 ts_ns;
	/* The entry record's ts_ns. */
	__u64 entry_ts_ns;
	/* The entry record's goid. */
	__u64 goid;
	/* Nanoseconds from the end of the entry probe to this exit probe. */
	__u64 duration_ns;
	/* The ENTRY probe id (the function), as in the entry record. */
	__u32 probe_id;
	/* enum mdt_exit_flags bits. */
	__u32 flags;
};

/* Bits of mdt_exit.flags. */
enum mdt_exit_flags {
	/* A delete that removed an entry: the count went down. */
	MDT_EXIT_REMOVED = 1,
	/* Reading the count at the exit (or at the entry) failed: no outcome. */
	MDT_EXIT_LEN_FAULT = 2,
};

/*
 * Crash forensics: the record of the probe on runtime.fatal, where a Go
 * program dies of map misuse ("concurrent map writes"), sent to the
 * "fatals" ring (a ring of its own: never lost behind a full ring of
 * deletes, and read first).
 */
struct mdt_fatal {
	/* bpf_ktime_get_ns() at the probe. */
	__u64 ts_ns;
	__u32 pid;
	__u32 tid;
	/* As in mdt_event; 0 with MDT_FATAL_GOID_FAULT. */
	__u64 goid;
	/* The kernel's counts of deletes and clears, every goroutine's, in
	 * the buckets (see mdt_window) from window_tick to the probe's: the
	 * whole buckets that cover mdt_config.fatal_window_ns before ts_ns.
	 * window_start_ns is where the first began: exact with clock
	 * buckets, at most one bucket late with tick buckets. */
	__u64 window_start_ns;
	__u64 window_deletes;
	__u64 window_clears;
	/* The message's full length; its first MDT_MAX_FATAL_MSG bytes are
	 * in msg[]. */
	__u32 msg_len;
	/* As in mdt_event: stack[0] = runtime.fatal's entry (run time). */
	__u16 stack_depth;
	/* enum mdt_fatal_flags. */
	__u8 flags;
	/* As in mdt_event: the goroutine's labels, in label_room. */
	__u8 labels;
	__u8 labels_flags;
	__u8 __pad;
	__u16 labels_n;
	/* The first bucket of the window (low 32 bits). */
	__u32 window_tick;
	__u64 stack[MDT_MAX_STACK_DEPTH];
	__u8 msg[MDT_MAX_FATAL_MSG];
	__u8 label_room[MDT_LABEL_AREA];
};

enum mdt_fatal_flags {
	/* The probe stopped the process (SIGSTOP) for user space to see what
	 * its other threads were running; user space resumes it (SIGCONT). */
	MDT_FATAL_HELD = 1,
	/* Not the process's first fatal error: another goroutine's, which
	 * tripped at the same time (the first one's record holds the stop). */
	MDT_FATAL_NOT_FIRST = 2,
	MDT_FATAL_GOID_FAULT = 4,
	/* Reading the message failed: msg[] is empty. */
	MDT_FATAL_MSG_FAULT = 8,
	MDT_FATAL_STACK_TRUNCATED = 16,
	/* Stopping the process was asked for and failed: no `running`. */
	MDT_FATAL_HOLD_FAILED = 32,
	/* Not stopped: mdt could not have let it go on (see hold_uid). */
	MDT_FATAL_HOLD_DENIED = 64,
};

#define MDT_HOLD_ANY_UID 0xffffffffu

/*
 * Crash forensics: one thread of the target as the "mdt_threads" task
 * iterator sees it while the process is stopped: its user registers as
 * saved at its last kernel entry (exact for a stopped thread).
 */
struct mdt_thread {
	__u32 tid;
	/* task_struct.__state (TASK_STOPPED = 4, TASK_TRACED = 8). */
	__u32 state;
	__u64 ip;
	__u64 sp;
	__u64 bp;
	/* Go's g in ABIInternal code. */
	__u64 r14;
	/* The thread's TLS base (Go's g is at a fixed offset from it). */
	__u64 fsbase;
};

/*
 * Crash forensics: this CPU's deletes and clears, counted by time (the
 * "windows" per-CPU array). The counts are cumulative; slot i remembers,
 * for bucket epoch[i] (i = epoch % BUCKETS), the
 * counts just before that bucket's first hit, so the hits since any bucket
 * are the counts now minus the ones of the first slot at or after it.
 */
struct mdt_window {
	__u64 deletes;
	__u64 clears;
	__u64 epoch[MDT_WINDOW_BUCKETS];
	__u64 deletes_at[MDT_WINDOW_BUCKETS];
	__u64 clears_at[MDT_WINDOW_BUCKETS];
};

/* Per-attach-point configuration, indexed by the probe id. */
struct mdt_probe_cfg {
	/* enum mdt_kind: how to read this function's arguments. */
	__u8 kind;
	/* MDT_KIND_EXIT: the probe id of the function's entry. */
	__u8 entry;
	/* An entry whose function has exit points: while they are armed, its
	 * calls leave a pending entry for them. */
	__u8 has_exits;
	/* Explicit padding, must be 0. */
	__u8 __pad[5];
};

/*
 * Outcomes per entry probe (the "outcomes" per-CPU array), counted at the
 * exits: exact for every call whose entry and exit were both seen.
 */
struct mdt_outcome {
	/* Calls whose exit was matched to their entry. */
	__u64 matched;
	/* Deletes among them that removed an entry / found no such key. */
	__u64 removed;
	__u64 absent;
	/* Their total duration, entry probe to exit probe, nanoseconds. */
	__u64 total_ns;
};

/* Key of the "latency" histograms: per map type and entry probe. */
struct mdt_latency_key {
	__u64 map_type_ptr;
	__u32 probe_id;
	__u32 __pad;
};

/* Value of "latency": calls per bucket (not cumulative) and their sum. */
struct mdt_latency {
	__u64 buckets[MDT_LATENCY_BUCKETS];
	__u64 sum_ns;
};

/* Value of "site_counts": per (map type, caller, probe). */
struct mdt_site_count {
	/* Every hit, before sampling. */
	__u64 hits;
	/* With the exit probes armed: deletes that removed / found nothing. */
	__u64 removed;
	__u64 absent;
	/* Their total duration (ns), for an average without a histogram. */
	__u64 total_ns;
	/* The map of this CPU's last hit: with no records (metrics alone),
	 * how user space learns which maps to read the memory of. */
	__u64 last_map;
};

/*
 * Read-only configuration: the program's `const volatile` .rodata global
 * `mdt_cfg`, written by user space between open and load (the verifier
 * then sees constants and prunes dead branches).
 */
struct mdt_config {
	/* Only process (tgid, initial pid namespace) whose hits count; 0 = any. */
	__u32 target_tgid;
	/* Offset of goid in runtime.g (152 or 160, by Go version); 0 = don't
	 * read the goroutine id. */
	__u32 goid_offset;
	/* Offset of the key *abi.Type inside the map type descriptor
	 * (MDT_GO_MAPTYPE_KEY); used by KEY_PTR / SWISS_DELETE to read the key
	 * size (abi.Type.Size_). 0 = don't copy generic keys. */
	__u32 key_type_offset;
	/* User stack frames to capture, 0..MDT_MAX_STACK_DEPTH; 0 = no stack. */
	__u32 max_stack_depth;
	/* Sampling of detailed events (hits are always counted): the n-th hit
	 * of a probe on a CPU (n from 0) gets an event iff the top 32 bits of
	 * n * 2^64/phi are < sample_threshold (Fibonacci hashing: the chosen
	 * hits are spread evenly, whatever the period of the workload, and the
	 * decision costs no helper call). 0 = no events, >= 2^32 = every hit
	 * (rate r -> r * 2^32). */
	__u64 sample_threshold;
	/* Key bytes to copy per event, 0..MDT_MAX_KEY_BYTES. */
	__u32 key_bytes;
	/* Offset of the element count in the map header (0 in every release). */
	__u32 map_count_offset;
	/* Wake the reader up once per this many bytes a CPU writes to the
	 * ring buffer (a power of two; 0 = never); otherwise it drains on its
	 * own timer. Waking it per
	 * event would cost the target more than the rest of the probe. */
	__u64 wakeup_bytes;
	/* 1 = aggregation mode (mdt flame): count hits per (stack, map type,
	 * probe[, goroutine]) in the "stack_counts" map instead of sending a
	 * record per delete, so user space does nothing per delete. */
	__u32 aggregate;
	/* Aggregation mode: also key the counts by goroutine id. */
	__u32 aggregate_goid;
	/* 1 = count every hit (before sampling) per (map type, caller return
	 * address, probe) in the "site_counts" map: the exact counts behind
	 * mdt's Prometheus metrics and alerts. Costs one 8-byte user read and
	 * one hash update per hit, so it is off unless asked for. */
	__u32 count_sites;
	/* 1 = the probe id is mdt_probe_by_pc[pc & 4095] (the low 12 bits
	 * of the probed pc survive any load bias, and user space checks they
	 * differ between attach points), saving the attach-cookie helper call;
	 * 0 = the probe id is the attach cookie. */
	__u32 probe_by_pc;
	/* 1 = drop hits from other processes than target_tgid in the program.
	 * Needed only where the kernel does not filter by process itself
	 * (uprobe.multi links before Linux 6.12 let a fork of the target hit
	 * the probes): it costs a helper call on every hit. */
	__u32 check_tgid;
	/* 1 = latency: exit points are configured (MDT_KIND_EXIT); while
	 * mdt_exits_armed, every entry leaves a "pending" entry for its exit. */
	__u32 exits;
	/* Aggregation mode with exits: also sum the calls' durations per
	 * stack in "stack_ns" (mdt flame --weight latency). */
	__u32 weight_latency;
	/* 1 = follow the strings and interfaces inside keys (mdt_key_plan):
	 * struct field offsets as Go 1.19 and later store them (before 1.19
	 * they were shifted left by one). */
	__u32 key_plans;
	/* Goroutine labels: offset of runtime.g.labels (0 = none), enum
	 * mdt_label_store, and the bytes kept of each value. */
	__u32 labels_offset;
	__u32 label_store;
	__u32 label_bytes;
	/* --labels KEY,...: how many keys (0: every label), each key's length
	 * and its first 8 bytes (zero-padded, as a little-endian word). */
	__u32 label_keys;
	__u16 label_key_len[MDT_MAX_LABEL_KEYS];
	__u64 label_key_head[MDT_MAX_LABEL_KEYS];
	/* Crash forensics: 1 = count deletes by time ("windows"); the window
	 * a fatal record counts (ns, < MDT_WINDOW_BUCKETS - 1 buckets); the
	 * CPUs to sum (num_possible_cpus). */
	__u32 windows;
	__u32 nr_cpus;
	__u64 fatal_window_ns;
	/* A bucket of the counts by time in ns, as 2^tick_shift jiffies; 0:
	 * buckets of the monotonic clock (2^MDT_WINDOW_SHIFT ns). */
	__u64 tick_ns;
	__u32 tick_shift;
	/* Crash forensics: the probe stops a dying process only if mdt may
	 * let it go on: its real or saved uid is hold_uid (mdt's effective
	 * uid), or any with MDT_HOLD_ANY_UID (mdt has CAP_KILL). Decided at
	 * the fatal error, so a target that changed its uid since is not
	 * stopped. */
	__u32 hold_uid;
	/* Per attach point (index = probe id). */
	struct mdt_probe_cfg probes[MDT_MAX_PROBES];
};

_Static_assert(sizeof(struct mdt_event) ==
		       88 + MDT_MAX_KEY_BYTES + 8 * MDT_MAX_STACK_DEPTH + MDT_LABEL_AREA,
	       "mdt_event layout changed");
_Static_assert(sizeof(struct mdt_probe_cfg) == 8, "mdt_probe_cfg layout changed");
_Static_assert(sizeof(struct mdt_key_part) == 8, "mdt_key_part layout changed");
/* Key of the "stack_counts" map (aggregation mode). */
struct mdt_agg_key {
	/* Hash of stack[0..depth) (the "stacks" map holds the frames). */
	__u64 stack_hash;
	/* Map type descriptor, as in mdt_event.map_type_ptr. */
	__u64 map_type_ptr;
	/* Goroutine id if mdt_config.aggregate_goid, else 0. */
	__u64 goid;
	/* Probe id of the attach point. */
	__u32 probe_id;
	__u32 __pad;
};

/* Value of the "stacks" map: the frames behind a stack hash. */
struct mdt_stack {
	__u32 depth;
	__u32 flags; /* MDT_EV_STACK_TRUNCATED or 0 */
	__u64 pcs[MDT_MAX_STACK_DEPTH];
};

/* Key of the "site_counts" map (mdt_config.count_sites). */
struct mdt_site_key {
	/* Map type descriptor, as in mdt_event.map_type_ptr. */
	__u64 map_type_ptr;
	/* Return address into the code that asked for the delete: the word at
	 * [SP] at the probe (= mdt_event.stack[1]), or, when that lies in one of
	 * mdt_machinery's functions (a reflect delete), the first return
	 * address of the frame-pointer chain outside them; 0 if unreadable. */
	__u64 caller;
	/* The probed pc (= mdt_event.stack[0]): one per probe id; lets user
	 * space find the load bias without an event. */
	__u64 pc;
	/* Probe id of the attach point. */
	__u32 probe_id;
	__u32 __pad;
};

/* A link-time address range [start, end) (mdt_machinery). */
struct mdt_range {
	__u64 start;
	__u64 end;
};

_Static_assert(sizeof(struct mdt_agg_key) == 32, "mdt_agg_key layout changed");
_Static_assert(sizeof(struct mdt_range) == 16, "mdt_range layout changed");
_Static_assert(sizeof(struct mdt_site_key) == 32, "mdt_site_key layout changed");
_Static_assert(sizeof(struct mdt_exit) == 40, "mdt_exit layout changed");
_Static_assert(sizeof(struct mdt_exit) < __builtin_offsetof(struct mdt_event, stack),
	       "an exit record must be shorter than any event record");
_Static_assert(sizeof(struct mdt_outcome) == 32, "mdt_outcome layout changed");
_Static_assert(sizeof(struct mdt_site_count) == 40, "mdt_site_count layout changed");
_Static_assert(sizeof(struct mdt_latency_key) == 16, "mdt_latency_key layout changed");
_Static_assert(sizeof(struct mdt_label) == 4, "mdt_label layout changed");
_Static_assert(sizeof(struct mdt_thread) == 48, "mdt_thread layout changed");
_Static_assert(sizeof(struct mdt_fatal) ==
		       64 + 8 * MDT_MAX_STACK_DEPTH + MDT_MAX_FATAL_MSG + MDT_LABEL_AREA,
	       "mdt_fatal layout changed");
_Static_assert(sizeof(struct mdt_config) == 200 + 8 * MDT_MAX_PROBES,
	       "mdt_config layout changed");

#endif /* __MDT_H */
