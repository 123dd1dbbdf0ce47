// SPDX-License-Identifier: GPL-2.0
/*
 * mdt.bpf.c -- uprobe program for Go map deletes.
 *
 * One BPF object, one file: libbpf-cargo builds one skeleton per source,
 * and the probe's steps (count, read, walk, send) share its maps and its
 * per-CPU scratch space. Its layout, top to bottom: configuration, maps,
 * key reading, the stack walk, sending, aggregation, site counting, the
 * probe body.
 *
 * One program, `mdt_map_delete` (or `mdt_map_delete_multi`), is attached to
 * every map-delete function of the target (runtime.mapdelete*,
 * runtime.mapclear, ...), once per attach point. The probe id -- from the
 * probed pc, or the attach cookie -- selects the hit counter and the
 * argument layout (mdt_cfg.probes[id].kind). The kernel runs it only for the
 * target process (the links are made for its pid).
 *
 * Per hit: count the hit (exact, per-CPU) -- and, when asked, per (map
 * type, caller) in "site_counts" -- then, subject to sampling, read the Go
 * register arguments, the map length, the goroutine id, the user stack and
 * the key, and put a record into the "events" ring buffer: a struct
 * mdt_event cut to what it carries, each distinct stack only the first time
 * (see mdt.h). Records that do not fit are counted. In aggregation mode
 * (mdt flame) the stack is counted in the kernel instead.
 *
 * Precondition for the stack walk: the probe sits before the function's
 * frame setup (at its entry, at the first instruction after the stack-check
 * branch, or on a RET), so the return address is at [SP] and BP still holds
 * the caller's frame pointer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "mdt.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Go ABIInternal registers. arm64 would be X0..X3 for the arguments, X28
 * for g, X30 (LR) for the return address and X29 for the frame pointer;
 * it also needs an arm64 vmlinux.h, which is not vendored yet.
 */
#if defined(__TARGET_ARCH_x86)
#define GO_ARG0(r) ((r)->ax)
#define GO_ARG1(r) ((r)->bx)
#define GO_ARG2(r) ((r)->cx)
#define GO_ARG3(r) ((r)->di)
#define GO_G(r) ((r)->r14)
#define GO_PC(r) ((r)->ip)
#define GO_SP(r) ((r)->sp)
#define GO_FP(r) ((r)->bp)
#else
#error "mdt.bpf.c: only x86-64 (__TARGET_ARCH_x86) is supported for now"
#endif

/* Set by user space before load (libbpf skeleton: rodata). */
const volatile struct mdt_config mdt_cfg = {};

/*
 * Site counting, also set before load: the link-time ranges of the
 * functions that delete on behalf of their caller (reflect.mapdelete*,
 * reflect.Value.SetMapIndex, reflect.Value.Clear, maps.DeleteFunc when not
 * inlined; start = 0 ends the list), and the link-time address of each
 * probe, which turns run-time return addresses into link-time ones (PIE).
 */
const volatile struct mdt_range mdt_machinery[MDT_MAX_MACHINERY] = {};
const volatile __u64 mdt_probe_va[MDT_MAX_PROBES] = {};

/*
 * With mdt_cfg.probe_by_pc: the probe id by the low 12 bits of the probed
 * pc (0xff = not a probe), set before load. A load bias is a whole number of
 * pages, so these bits are the same at run time as at link time.
 */
const volatile __u8 mdt_probe_by_pc[4096] = {};

/* Latency: the histogram's bucket bounds (ns, ascending), set before load. */
const volatile __u64 mdt_latency_bounds[MDT_LATENCY_BOUNDS] = {};

/*
 * Latency, set by user space: mdt_exits_armed is 1 while entries should
 * leave a "pending" entry for their exit (the exit probes are attached
 * before it is set, and detached once no call of this arming is left in
 * flight, or after a bound); mdt_exits_gen numbers the armings, so that an
 * entry left by an earlier one (a call that never returned, or was still
 * running at a detach) is never taken for a later call's.
 */
volatile __u32 mdt_exits_armed = 0;
volatile __u32 mdt_exits_gen = 0;
/* Calls of the current arming between their entry and their exit. */
__s64 mdt_exits_in_flight = 0;

/*
 * BTF anchors: unused globals that put these types into the object's BTF,
 * so that libbpf-cargo generates them in the skeleton's `types` module.
 */
struct mdt_event mdt_event_btf_anchor;
enum mdt_limits mdt_limits_btf_anchor;
enum mdt_kind mdt_kind_btf_anchor;
enum mdt_event_flags mdt_event_flags_btf_anchor;
enum mdt_stat mdt_stat_btf_anchor;
enum mdt_go_abi mdt_go_abi_btf_anchor;
struct mdt_agg_key mdt_agg_key_btf_anchor;
struct mdt_stack mdt_stack_btf_anchor;
struct mdt_site_key mdt_site_key_btf_anchor;
struct mdt_range mdt_range_btf_anchor;
struct mdt_exit mdt_exit_btf_anchor;
enum mdt_exit_flags mdt_exit_flags_btf_anchor;
struct mdt_outcome mdt_outcome_btf_anchor;
struct mdt_latency_key mdt_latency_key_btf_anchor;
struct mdt_latency mdt_latency_btf_anchor;
struct mdt_site_count mdt_site_count_btf_anchor;
struct mdt_key_part mdt_key_part_btf_anchor;
enum mdt_key_part_kind mdt_key_part_kind_btf_anchor;
enum mdt_key_part_flags mdt_key_part_flags_btf_anchor;
struct mdt_label mdt_label_btf_anchor;
enum mdt_label_flags mdt_label_flags_btf_anchor;
enum mdt_labels_flags mdt_labels_flags_btf_anchor;
enum mdt_label_store mdt_label_store_btf_anchor;
struct mdt_fatal mdt_fatal_btf_anchor;
enum mdt_fatal_flags mdt_fatal_flags_btf_anchor;
struct mdt_thread mdt_thread_btf_anchor;
struct mdt_window mdt_window_btf_anchor;

/*
 * Crash forensics, set by user space: mdt_fatal_hold is 1 while it can
 * resume a process the fatal probe stops (it clears it before it stops
 * reading); mdt_fatal_stopped is set by the first fatal probe of the
 * process, so that a second goroutine dying at the same time does not
 * stop it again after user space resumed it.
 */
volatile __u32 mdt_fatal_hold = 0;
__u64 mdt_fatal_stopped = 0;
/* SIGSTOPs sent: user space resumes the process at the end whatever it read. */
__u64 mdt_fatal_holds = 0;

/* Hits per attach point (index = probe id). Exact: never sampled. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MDT_MAX_PROBES);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

/* Health counters, indexed by enum mdt_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MDT_STAT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* struct mdt_event records. User space may resize it before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* Aggregation mode: hits per (stack, map type, probe[, goroutine]). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct mdt_agg_key);
	__type(value, __u64);
} stack_counts SEC(".maps");

/* Aggregation mode: the frames of each stack hash seen. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u64);
	__type(value, struct mdt_stack);
} stacks SEC(".maps");

/*
 * Site counting (mdt_config.count_sites): hits per (map type, caller return
 * address, probe), per CPU, counted before sampling: exact. Entries are
 * allocated as they are first seen (BPF_F_NO_PREALLOC, = 1 in the UAPI's
 * enum; not in our trimmed vmlinux.h): new sites are rare, and memory stays
 * what the program really uses. User space shrinks it to one entry when site
 * counting is off.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1 << 16);
	__uint(map_flags, 1 /* BPF_F_NO_PREALLOC */);
	__type(key, struct mdt_site_key);
	__type(value, struct mdt_site_count);
} site_counts SEC(".maps");

/*
 * Latency: a call between its entry and its exit, by goroutine (g, which
 * stays with the goroutine when it moves to another thread, and cannot be
 * reused before it returns) and function. An LRU: entries of calls that
 * never return (panics) age out; an exit whose entry is gone is counted.
 */
struct pending_key {
	__u64 g;
	__u32 probe_id; /* the entry probe */
	__u32 __pad;
};

struct pending {
	__u64 ts_ns;    /* the entry record's ts_ns (the join key) if one was sent */
	__u64 start_ns; /* when the entry probe finished: the duration starts */
	__u64 map_ptr;
	__u64 map_len; /* at the entry */
	__u64 goid;
	struct mdt_site_key site; /* count_sites: the site to credit */
	struct mdt_agg_key agg;   /* weight_latency: the stack to credit */
	__u32 sent;    /* 1 = an entry record was sent: send an mdt_exit */
	__u32 len_fault;
	__u32 gen;     /* mdt_exits_gen at the entry */
	__u32 __pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, struct pending_key);
	__type(value, struct pending);
} pending SEC(".maps");

/* Latency: per entry probe, at its exits. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MDT_MAX_PROBES);
	__type(key, __u32);
	__type(value, struct mdt_outcome);
} outcomes SEC(".maps");

/* Latency: exact histograms per (map type, entry probe). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, 1 /* BPF_F_NO_PREALLOC */);
	__type(key, struct mdt_latency_key);
	__type(value, struct mdt_latency);
} latency SEC(".maps");

/* Aggregation mode with weight_latency: nanoseconds per stack_counts key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 16);
	__type(key, struct mdt_agg_key);
	__type(value, __u64);
} stack_ns SEC(".maps");

/* Record mode: bytes this CPU has put in the ring buffer (wakeups). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bytes_out SEC(".maps");

/*
 * Record mode: the hash of the last stack sent in full, per slot
 * (hash % MDT_SENT_STACKS). Shared by all CPUs; see stack_words_to_send.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MDT_SENT_STACKS);
	__type(key, __u32);
	__type(value, __u64);
} sent_stacks SEC(".maps");

/* What read_key_ptr needs of a key type: its size and abi.Kind, and where
 * the strings and interfaces inside it are (its "plan"). */
enum key_slot_kind {
	KEY_SLOT_STRING = 1,
	KEY_SLOT_EFACE = 2, /* interface {}: the first word is the type */
	KEY_SLOT_IFACE = 3, /* other interfaces: the first word is an itab */
};

struct key_slot {
	__u16 offset;
	__u8 kind; /* enum key_slot_kind */
	__u8 __pad;
};

struct key_type_info {
	__u64 size;
	__u8 kind;
	__u8 nslots;
	__u8 __pad[6];
	struct key_slot slots[MDT_KEY_SLOTS];
};

/* One step of the walk of a key type's descriptors (mdt_key_plan). */
enum plan_what {
	PLAN_TYPE = 0,   /* the type at ptr, at base in the key */
	PLAN_FIELDS = 1, /* the `left` struct fields at ptr, of the struct at base */
	PLAN_ELEMS = 2,  /* `left` elements of type ptr, from base, `stride` apart */
};

struct plan_item {
	__u64 ptr;
	__u32 base;
	__u32 left;
	__u32 stride;
	__u32 what;
};

/* Crash forensics: fatal records (their own ring, see mdt.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 17);
} fatals SEC(".maps");

/* Crash forensics: deletes and clears by time, per CPU (see mdt.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mdt_window);
} windows SEC(".maps");

/*
 * Per-CPU scratch space: the event is built here (too big for the 512-byte
 * BPF stack) and then copied into the ring buffer with only as many stack
 * entries as were captured; `chunk` holds the copy of goroutine stack that
 * the frame-pointer walk follows.
 */
struct scratch {
	struct mdt_event ev;
	/* Frame-pointer walk state. It lives here rather than on the BPF stack
	 * on purpose: values read back from a map are unknown to the verifier,
	 * so every iteration of the walk looks the same to it and the loop is
	 * verified once per frame instead of once per frame and path. */
	__u64 fp;    /* frame pointer of the next frame to read */
	__u64 base;  /* user address of chunk[0] */
	__u32 valid; /* chunk[0..valid) is a copy of [base, base + valid) */
	__u32 depth; /* frames captured so far */
	__u32 max;   /* frames to capture */
	__u32 g_ok;  /* g_head holds the head of this hit's g */
	__u64 hash;  /* running hash of the captured frames (aggregation) */
	__u64 stack_hi; /* the goroutine's stack top (g.stack.hi), 0 = unknown */
	/* The first MDT_G_HEAD_BYTES of runtime.g. */
	__u64 g_head[MDT_G_HEAD_BYTES / 8];
	/* The key type of this delete (read_key_ptr). */
	struct key_type_info kt;
	/* mdt_key_plan's walk: pending steps, and the descriptor it reads
	 * (abi.Type and the 24 bytes of ArrayType / StructType /
	 * InterfaceType after it). */
	struct plan_item plan[MDT_PLAN_STACK];
	__u32 plan_sp;
	__u32 plan_fault;
	__u64 desc[(MDT_GO_TYPE_HEADER + 24) / 8];
	/* Goroutine labels: the string headers of each label's key and value
	 * (key ptr, key len, value ptr, value len), a bucket of a classic-map
	 * label set, and the labels as a record carries them. */
	__u64 lhdr[MDT_MAX_LABELS * 4];
	__u64 bucket[MDT_GO_LABEL_BUCKET_SIZE / 8];
	__u8 lab[MDT_LABEL_AREA];
	/* mdt_read_labels' loops: labels gathered, bytes written, the bucket
	 * to read next and the main bucket it belongs to. */
	__u32 lab_n;
	__u32 lab_off;
	__u64 lab_at;
	__u32 lab_main;
	__u32 __lab_pad;
	/* Sampled hits that used this scratch space: a hit that preempted a
	 * key-plan walk on this CPU changed it, and then the walk's result
	 * (which may mix both hits' state) is neither cached nor used. */
	__u64 entries;
	/* The copy of goroutine stack the walk follows. */
	union {
		__u8 chunk[MDT_STACK_CHUNK];
		__u64 words[MDT_STACK_CHUNK / 8];
	};
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_space SEC(".maps");

/*
 * Uprobe programs run with migration disabled but may be preempted, so a
 * plain "+= 1" on a per-CPU slot could lose an update: add atomically.
 */
static __always_inline void count(void *map, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * Copy min(len, key_bytes) key bytes from user memory to dst (inside the
 * event, right after the stack words it sends). Returns the bytes copied.
 */
static __always_inline __u32 read_key(struct mdt_event *e, __u8 *dst, __u64 src, __u64 len)
{
	__u32 limit = mdt_cfg.key_bytes;
	__u32 n;

	if (limit > MDT_MAX_KEY_BYTES)
		limit = MDT_MAX_KEY_BYTES;
	n = len > limit ? limit : len;
	if (len > limit)
		e->flags |= MDT_EV_KEY_TRUNCATED;
	barrier_var(n);
	if (n > MDT_MAX_KEY_BYTES) /* for the verifier */
		return 0;
	if (n && bpf_probe_read_user(dst, n, (const void *)src)) {
		e->flags |= MDT_EV_KEY_FAULT;
		return 0;
	}
	return n;
}

/*
 * Key types by map type (map type descriptors, like all Go types, are never
 * freed or changed): one hash lookup instead of reading the descriptors
 * again per delete by pointer.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct key_type_info);
} key_types SEC(".maps");

/* The head of an abi.Type (enum mdt_go_abi). */
struct go_type_head {
	__u64 size;
	__u64 ptrbytes;
	__u32 hash;
	__u8 tflag, align, field_align, kind;
};
_Static_assert(__builtin_offsetof(struct go_type_head, size) == MDT_GO_TYPE_SIZE &&
		       __builtin_offsetof(struct go_type_head, ptrbytes) == MDT_GO_TYPE_PTRBYTES &&
		       __builtin_offsetof(struct go_type_head, tflag) == MDT_GO_TYPE_TFLAG &&
		       __builtin_offsetof(struct go_type_head, kind) == MDT_GO_TYPE_KIND,
	       "abi.Type layout (enum mdt_go_abi)");

static __always_inline int plan_push(struct scratch *s, __u64 ptr, __u32 base, __u32 left,
				     __u32 stride, __u32 what)
{
	__u32 sp = s->plan_sp;

	if (sp >= MDT_PLAN_STACK)
		return 1;
	s->plan[sp].ptr = ptr;
	s->plan[sp].base = base;
	s->plan[sp].left = left;
	s->plan[sp].stride = stride;
	s->plan[sp].what = what;
	s->plan_sp = sp + 1;
	return 0;
}

/* One more string or interface in the key; nonzero when the plan is full. */
static __always_inline int plan_slot(struct scratch *s, __u32 base, __u8 kind)
{
	__u32 n = s->kt.nslots;

	if (n >= MDT_KEY_SLOTS)
		return 1;
	s->kt.slots[n].offset = base;
	s->kt.slots[n].kind = kind;
	s->kt.nslots = n + 1;
	return 0;
}

/* One step of mdt_key_plan: nonzero when the walk is over. */
static __always_inline int plan_step(struct scratch *s, __u32 limit)
{
	struct plan_item it;
	__u32 sp = s->plan_sp;
	__u64 *d = s->desc;
	__u8 kind;

	if (!sp || sp > MDT_PLAN_STACK)
		return 1;
	sp--;
	s->plan_sp = sp;
	it = s->plan[sp];
	/* Past the bytes a record carries: nothing there is followed. */
	if (it.base >= limit)
		return 0;
	switch (it.what) {
	case PLAN_TYPE:
		if (bpf_probe_read_user(d, sizeof(s->desc), (const void *)it.ptr)) {
			s->plan_fault = 1;
			return 1;
		}
		/* No pointers in it: nothing to follow (most keys). */
		if (!d[MDT_GO_TYPE_PTRBYTES / 8])
			return 0;
		kind = ((__u8 *)d)[MDT_GO_TYPE_KIND] & MDT_GO_KIND_MASK;
		if (kind == MDT_GO_KIND_STRING)
			return plan_slot(s, it.base, KEY_SLOT_STRING);
		if (kind == MDT_GO_KIND_INTERFACE)
			return plan_slot(s, it.base,
					 d[(MDT_GO_INTERFACETYPE_METHODS + MDT_GO_SLICE_LEN) / 8] ?
						 KEY_SLOT_IFACE :
						 KEY_SLOT_EFACE);
		if (kind == MDT_GO_KIND_STRUCT) {
			__u64 n = d[(MDT_GO_STRUCTTYPE_FIELDS + MDT_GO_SLICE_LEN) / 8];

			if (!n)
				return 0;
			if (n > 64)
				return 1;
			return plan_push(s, d[MDT_GO_STRUCTTYPE_FIELDS / 8], it.base, n, 0,
					 PLAN_FIELDS);
		}
		if (kind == MDT_GO_KIND_ARRAY) {
			__u64 len = d[MDT_GO_ARRAYTYPE_LEN / 8], elem = d[MDT_GO_ARRAYTYPE_ELEM / 8];
			__u64 size = 0;

			if (!len)
				return 0;
			if (bpf_probe_read_user(&size, sizeof(size),
						(const void *)(elem + MDT_GO_TYPE_SIZE))) {
				s->plan_fault = 1;
				return 1;
			}
			if (!size || size > 0xffff || len > 0xffff)
				return 0;
			return plan_push(s, elem, it.base, len, size, PLAN_ELEMS);
		}
		return 0; /* pointers: nothing behind them is followed */
	case PLAN_FIELDS: {
		struct {
			__u64 name, typ, offset;
		} f;
		_Static_assert(__builtin_offsetof(typeof(f), typ) == MDT_GO_STRUCTFIELD_TYP &&
				       __builtin_offsetof(typeof(f), offset) ==
					       MDT_GO_STRUCTFIELD_OFFSET &&
				       sizeof(f) == MDT_GO_STRUCTFIELD_SIZE,
			       "abi.StructField layout (enum mdt_go_abi)");

		if (bpf_probe_read_user(&f, sizeof(f), (const void *)it.ptr)) {
			s->plan_fault = 1;
			return 1;
		}
		/* The fields after this one come after what this one holds. */
		if (it.left > 1 &&
		    plan_push(s, it.ptr + MDT_GO_STRUCTFIELD_SIZE, it.base, it.left - 1, 0,
			      PLAN_FIELDS))
			return 1;
		if (f.offset > 0xffff)
			return 0;
		return plan_push(s, f.typ, it.base + (__u32)f.offset, 0, 0, PLAN_TYPE);
	}
	case PLAN_ELEMS:
		if (it.left > 1 &&
		    plan_push(s, it.ptr, it.base + it.stride, it.left - 1, it.stride, PLAN_ELEMS))
			return 1;
		return plan_push(s, it.ptr, it.base, 0, 0, PLAN_TYPE);
	}
	return 1;
}

/*
 * A key type's plan: where its strings and interfaces are, in offset order
 * (a depth-first walk of its descriptors: struct fields and array elements
 * in order), within the first key_bytes bytes, at most MDT_KEY_SLOTS.
 * Made once per map type. A global function, verified on its own.
 */
__noinline int mdt_key_plan(struct scratch *s, __u64 key_type)
{
	__u32 limit = mdt_cfg.key_bytes;

	if (!s)
		return 0;
	if (limit > MDT_MAX_KEY_BYTES)
		limit = MDT_MAX_KEY_BYTES;
	s->kt.nslots = 0;
	s->plan_sp = 0;
	s->plan_fault = 0;
	plan_push(s, key_type, 0, 0, 0, PLAN_TYPE);
	for (__u32 i = 0; i < MDT_PLAN_STEPS; i++)
		if (plan_step(s, limit))
			break;
	return 0;
}

/*
 * The key type of a map type into s->kt: Size_ and Kind_ of the key
 * *abi.Type at map type + key_type_offset, and its plan if it holds
 * pointers. Returns nonzero on failure.
 */
static __always_inline int key_type_of(struct scratch *s, __u64 map_type)
{
	struct key_type_info *cached = bpf_map_lookup_elem(&key_types, &map_type);
	struct go_type_head key_type;
	__u64 key_type_ptr = 0, seen;

	if (cached) {
		s->kt.size = cached->size;
		s->kt.kind = cached->kind;
		s->kt.nslots = cached->nslots;
		/* Only keys with strings or interfaces in them pay for these. */
		if (cached->nslots)
			__builtin_memcpy(s->kt.slots, cached->slots, sizeof(s->kt.slots));
		return 0;
	}
	if (bpf_probe_read_user(&key_type_ptr, sizeof(key_type_ptr),
				(const void *)(map_type + mdt_cfg.key_type_offset)) ||
	    bpf_probe_read_user(&key_type, sizeof(key_type), (const void *)key_type_ptr))
		return 1;
	seen = s->entries;
	s->kt.size = key_type.size;
	s->kt.kind = key_type.kind & MDT_GO_KIND_MASK;
	s->kt.nslots = 0;
	s->plan_fault = 0;
	/* A string key is followed to its bytes by read_key_ptr itself. */
	if (mdt_cfg.key_plans && key_type.ptrbytes && s->kt.kind != MDT_GO_KIND_STRING)
		mdt_key_plan(s, key_type_ptr);
	if (s->entries != seen) {
		/* Preempted by another hit on this CPU: its state may be mixed
		 * in. This record goes without parts (its key is cut there);
		 * the next delete of this map type walks again. */
		s->kt.size = key_type.size;
		s->kt.kind = key_type.kind & MDT_GO_KIND_MASK;
		s->kt.nslots = 0;
		return 0;
	}
	/* A descriptor that could not be read now is read again next time. */
	if (!s->plan_fault)
		bpf_map_update_elem(&key_types, &map_type, &s->kt, BPF_ANY);
	return 0;
}

/*
 * The parts of the key (struct mdt_key_part, see mdt.h): for each string
 * and interface of the plan whose header the key_n key bytes at dst hold,
 * the bytes behind its pointer, after the key bytes, while key bytes and
 * parts fit in key_bytes. Returns the bytes added. A global function,
 * verified on its own; called only for keys whose plan has slots.
 */
__noinline int mdt_key_parts(struct scratch *s, __u32 words, __u32 key_n)
{
	__u64 limit = mdt_cfg.key_bytes, pos;
	__u32 nparts = 0;
	struct mdt_key_part part;
	struct go_type_head t;
	struct {
		__u64 ptr;
		__u64 len;
	} str;
	__u8 *dst;

	if (!s)
		return 0;
	if (limit > MDT_MAX_KEY_BYTES)
		limit = MDT_MAX_KEY_BYTES;
	if (words > MDT_MAX_STACK_DEPTH || key_n > limit)
		return 0;
	/* Masks the verifier keeps through spills (words <= 128 < 256). */
	dst = (__u8 *)s->ev.stack + 8 * (__u64)(words & 0xff);
	pos = key_n;
	for (__u32 i = 0; i < MDT_KEY_SLOTS; i++) {
		__u64 off, room, n, w0, w1, src, full, typ;
		__u8 kind;

		if (i >= s->kt.nslots)
			break;
		off = s->kt.slots[i].offset;
		kind = s->kt.slots[i].kind;
		/* The plan is in offset order: the next header is not there either. */
		if (off > MDT_MAX_KEY_BYTES - 16 || off + 16 > key_n)
			break;
		barrier_var(pos);
		if (pos > limit || limit - pos < sizeof(part))
			break;
		__builtin_memcpy(&w0, dst + off, 8);
		__builtin_memcpy(&w1, dst + off + 8, 8);
		part.offset = off;
		part.kind = MDT_PART_STRING;
		part.flags = 0;
		src = w0;
		full = w1;
		if (kind != KEY_SLOT_STRING) {
			/* An interface: its dynamic type, from the first word or
			 * from the itab it points to. */
			typ = w0;
			if (!typ)
				continue; /* nil */
			if (kind == KEY_SLOT_IFACE &&
			    bpf_probe_read_user(&typ, sizeof(typ), (const void *)(w0 + MDT_GO_ITAB_TYPE)))
				typ = 0;
			if (!typ || bpf_probe_read_user(&t, sizeof(t), (const void *)typ)) {
				part.kind = MDT_PART_VALUE;
				part.flags = MDT_PART_FAULT;
				full = 0;
				src = 0;
			} else if ((t.kind | t.tflag) & MDT_GO_DIRECT_IFACE) {
				continue; /* the value is the data word */
			} else if ((t.kind & MDT_GO_KIND_MASK) == MDT_GO_KIND_STRING) {
				part.kind = MDT_PART_VALUE_STRING;
				if (bpf_probe_read_user(&str, sizeof(str), (const void *)w1)) {
					part.flags = MDT_PART_FAULT;
					str.ptr = 0;
					str.len = 0;
				}
				src = str.ptr;
				full = str.len;
			} else {
				part.kind = MDT_PART_VALUE;
				src = w1;
				full = t.size;
			}
		}
		room = limit - pos - sizeof(part);
		n = full > room ? room : full;
		part.full = full > 0xffff ? 0xffff : (__u16)full;
		barrier_var(n);
		barrier_var(pos);
		if (n > MDT_MAX_KEY_BYTES || pos > MDT_MAX_KEY_BYTES)
			break;
		if (n && bpf_probe_read_user(dst + pos + sizeof(part), n, (const void *)src)) {
			part.flags |= MDT_PART_FAULT;
			n = 0;
		}
		part.len = n;
		__builtin_memcpy(dst + pos, &part, sizeof(part));
		pos += sizeof(part) + n;
		nparts++;
	}
	s->ev.key_parts = nparts;
	s->ev.key_n = key_n;
	return pos - key_n;
}

/*
 * A key passed by pointer: its size and kind come from the map's key type.
 * A string key is followed to its bytes, as the fast path would have; the
 * strings and interfaces inside other keys to theirs (mdt_key_parts).
 */
static __always_inline __u32 read_key_ptr(struct scratch *s, __u32 words, __u8 *dst,
					  __u64 map_type, __u64 key_ptr)
{
	struct mdt_event *e = &s->ev;
	struct {
		__u64 ptr;
		__u64 len;
	} str;
	__u32 n;

	e->key_u64 = key_ptr;
	if (!mdt_cfg.key_type_offset)
		return 0;
	if (key_type_of(s, map_type)) {
		e->flags |= MDT_EV_KEY_FAULT;
		return 0;
	}
	if (s->kt.kind == MDT_GO_KIND_STRING) {
		if (bpf_probe_read_user(&str, sizeof(str), (const void *)key_ptr)) {
			e->flags |= MDT_EV_KEY_FAULT;
			return 0;
		}
		e->flags |= MDT_EV_KEY_STRING;
		e->key_len = str.len > 0xffffffffULL ? 0xffffffffU : (__u32)str.len;
		return read_key(e, dst, str.ptr, str.len);
	}
	e->key_len = s->kt.size > 0xffffffffULL ? 0xffffffffU : (__u32)s->kt.size;
	n = read_key(e, dst, key_ptr, s->kt.size);
	if (s->kt.nslots && n && !(e->flags & MDT_EV_KEY_FAULT))
		n += mdt_key_parts(s, words, n);
	return n;
}

/*
 * The key, by the probe's argument layout, into dst. Returns the bytes
 * copied there.
 */
static __always_inline __u32 read_key_arg(struct pt_regs *ctx, struct scratch *s, __u32 words,
					  __u8 *dst, __u8 kind)
{
	struct mdt_event *e = &s->ev;
	__u64 a2 = GO_ARG2(ctx);
	__u32 n = mdt_cfg.key_bytes;

	switch (kind) {
	case MDT_KIND_FAST32:
		e->key_u64 = (__u32)a2;
		e->key_len = 4;
		*(__u32 *)dst = (__u32)a2;
		return n < 4 ? n : 4;
	case MDT_KIND_FAST64:
		e->key_u64 = a2;
		e->key_len = 8;
		*(__u64 *)dst = a2;
		return n < 8 ? n : 8;
	case MDT_KIND_FASTSTR: {
		__u64 len = GO_ARG3(ctx);

		e->key_u64 = a2;
		e->key_len = len > 0xffffffffULL ? 0xffffffffU : (__u32)len;
		return read_key(e, dst, a2, len);
	}
	case MDT_KIND_KEY_PTR:
	case MDT_KIND_SWISS_DELETE:
		return read_key_ptr(s, words, dst, e->map_type_ptr, a2);
	default: /* the CLEAR kinds: no key */
		return 0;
	}
}

/*
 * Copy goroutine stack from addr into the chunk: up to the goroutine's
 * stack top (s->stack_hi) if known and within a chunk, else a whole chunk
 * if it is mapped, else up to the end of addr's page (mapped, if addr is).
 */
static __always_inline void load_chunk(struct scratch *s, __u64 addr)
{
	__u32 n = MDT_STACK_CHUNK;

	s->base = addr;
	s->valid = 0;
	if (s->stack_hi > addr && s->stack_hi - addr < MDT_STACK_CHUNK)
		n = s->stack_hi - addr;
	barrier_var(n);
	if (n > 0 && n <= MDT_STACK_CHUNK &&
	    !bpf_probe_read_user(s->chunk, n, (const void *)addr)) {
		s->valid = n;
		return;
	}
	n = 4096 - (addr & 4095);
	barrier_var(n);
	if (n > MDT_STACK_CHUNK)
		return;
	if (!bpf_probe_read_user(s->chunk, n, (const void *)addr))
		s->valid = n;
}

#define FNV_PRIME 0x100000001b3ULL

/*
 * One frame of the chain: [fp] = caller's fp, [fp+8] = return address.
 * Returns nonzero when the walk is over. Frame pointers are 8-byte aligned
 * (as is SP, chunk[0]), so the frame is read as two words, not as bytes.
 */
static __always_inline int walk_step(struct scratch *s)
{
	__u64 fp = s->fp, idx, next_fp, ret;
	__u32 d = s->depth;

	if (!fp || (fp & 7))
		return 1;
	if (fp < s->base || fp - s->base + 16 > s->valid)
		load_chunk(s, fp);
	idx = (fp - s->base) / 8;
	if (8 * idx + 16 > s->valid || idx > MDT_STACK_CHUNK / 8 - 2)
		return 1;
	next_fp = s->words[idx];
	ret = s->words[idx + 1];
	/* No code lives in the first 64 KiB: past the last Go frame (into C
	 * code without frame pointers, say) the chain is garbage; stop. */
	if (ret < 0x10000)
		return 1;
	if (d >= s->max || d >= MDT_MAX_STACK_DEPTH) {
		s->ev.flags |= MDT_EV_STACK_TRUNCATED;
		return 1;
	}
	s->ev.stack[d] = ret;
	s->hash = (s->hash ^ ret) * FNV_PRIME;
	s->depth = d + 1;
	/* Callers' frames live at higher addresses; anything else ends it. */
	if (next_fp <= fp)
		return 1;
	s->fp = next_fp;
	return 0;
}

/*
 * stack[0] = pc, stack[1] = [SP] (the probe sits before the function pushes
 * its frame), then the frame-pointer chain from BP, followed in copies of
 * the goroutine stack: one user-memory read per chunk, not one per frame.
 *
 * A global function, on purpose: the verifier checks it once, on its own,
 * instead of following every way out of the walk through the rest of the
 * program (which made loading ~60 % slower). The call costs a few ns.
 */
__noinline int mdt_walk_stack(struct scratch *s, __u64 pc, __u64 sp, __u64 fp)
{
	struct mdt_event *e;
	__u32 max = mdt_cfg.max_stack_depth;

	if (!s)
		return 0;
	e = &s->ev;
	s->hash = 0;
	if (max > MDT_MAX_STACK_DEPTH)
		max = MDT_MAX_STACK_DEPTH;
	if (max == 0)
		return 0;
	e->stack[0] = pc;
	e->stack_depth = 1;
	s->hash = (0xcbf29ce484222325ULL ^ pc) * FNV_PRIME;
	e->stack_id = s->hash;
	load_chunk(s, sp);
	if (s->valid < 8 || !s->words[0])
		return 0;
	if (max < 2) {
		e->flags |= MDT_EV_STACK_TRUNCATED;
		return 0;
	}
	e->stack[1] = s->words[0];
	s->hash = (s->hash ^ e->stack[1]) * FNV_PRIME;
	s->fp = fp;
	s->depth = 2;
	s->max = max;
	/* A plain bounded loop over the inlined step: cheaper per frame than
	 * bpf_loop's indirect call. */
	for (__u32 i = 0; i < MDT_MAX_STACK_DEPTH; i++)
		if (walk_step(s))
			break;
	e->stack_depth = s->depth > MDT_MAX_STACK_DEPTH ? MDT_MAX_STACK_DEPTH : s->depth;
	e->stack_id = s->hash;
	return 0;
}

/*
 * How many of the event's stack words to send: none if this stack was sent
 * before (user space keeps every stack it has seen, by its hash), else all.
 * sent_stacks remembers one hash per slot; a hash is written there only
 * after its record is in the ring buffer, so any record that omits a stack
 * comes after one that carries it.
 */
static __always_inline __u32 stack_words_to_send(struct scratch *s)
{
	__u32 slot = s->hash & (MDT_SENT_STACKS - 1);
	__u64 *seen;

	if (!s->ev.stack_depth)
		return 0;
	seen = bpf_map_lookup_elem(&sent_stacks, &slot);
	if (seen && *seen == s->hash) {
		s->ev.flags |= MDT_EV_STACK_KNOWN;
		return 0;
	}
	return s->ev.stack_depth;
}

static __always_inline void remember_stack(struct scratch *s)
{
	__u32 slot = s->hash & (MDT_SENT_STACKS - 1);
	__u64 *seen = bpf_map_lookup_elem(&sent_stacks, &slot);

	if (seen)
		*seen = s->hash;
}

/*
 * Copy the event into the ring buffer: the fixed part, `words` stack
 * entries, then key_n key bytes (records are cut there; see mdt.h).
 */
static __always_inline __u64 wakeup_flags(__u64 size);

static __always_inline bool submit(struct scratch *s, __u32 words, __u32 key_n)
{
	struct mdt_event *e = &s->ev;
	__u64 size = offsetof(struct mdt_event, stack) + 8 * (__u64)words + key_n;
	__u64 flags;

	if (size > sizeof(*e))
		size = sizeof(*e);
	flags = wakeup_flags(size);
	if (bpf_ringbuf_output(&events, e, size, flags)) {
		count(&stats, MDT_STAT_RINGBUF_FULL);
		return false;
	}
	count(&stats, MDT_STAT_SUBMITTED);
	if (words)
		remember_stack(s);
	return true;
}

/* The ring buffer flags for a record of `size` bytes: see below. */
static __always_inline __u64 wakeup_flags(__u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	/* Wake the reader when this CPU's output crosses a multiple of
	 * wakeup_bytes (a power of two, sized by user space for all CPUs
	 * together to stay well under the ring's size): at most one wakeup per
	 * wakeup_bytes written. (Waking while the buffer is above a level would
	 * wake once per record until the reader catches up, and a wakeup is an
	 * IPI: a VM exit in a guest, microseconds.) In between, the reader
	 * drains on its own timer. A per-CPU count, not the ring's producer
	 * position: a map access instead of a helper call. */
	if (mdt_cfg.wakeup_bytes) {
		__u32 zero = 0;
		__u64 *produced = bpf_map_lookup_elem(&bytes_out, &zero);

		if (produced) {
			__u64 before = __sync_fetch_and_add(produced, size + 8);

			if ((before ^ (before + size + 8)) & ~(mdt_cfg.wakeup_bytes - 1))
				flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	return flags;
}

/*
 * Aggregation mode: add one to the count of this (stack, map type, probe),
 * storing the stack's frames the first time it is seen.
 */
static __always_inline void aggregate(struct scratch *s, struct mdt_agg_key *out)
{
	struct mdt_event *e = &s->ev;
	struct mdt_agg_key key = {
		.stack_hash = s->hash,
		.map_type_ptr = e->map_type_ptr,
		.goid = mdt_cfg.aggregate_goid ? e->goid : 0,
		.probe_id = e->probe_id,
	};
	__u64 one = 1, *cnt;

	*out = key;
	cnt = bpf_map_lookup_elem(&stack_counts, &key);
	if (cnt) {
		__sync_fetch_and_add(cnt, 1);
		return;
	}
	if (!bpf_map_lookup_elem(&stacks, &key.stack_hash)) {
		/* The frames are copied from the event (same layout as pcs[]). */
		struct mdt_stack *st = (struct mdt_stack *)&s->chunk[0];

		st->depth = e->stack_depth;
		st->flags = e->flags & MDT_EV_STACK_TRUNCATED;
		__builtin_memcpy(st->pcs, e->stack, sizeof(st->pcs));
		if (bpf_map_update_elem(&stacks, &key.stack_hash, st, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&stacks, &key.stack_hash)) {
			count(&stats, MDT_STAT_AGG_FULL);
			return;
		}
	}
	/* Another CPU may have inserted the key meanwhile: add to its count. */
	if (bpf_map_update_elem(&stack_counts, &key, &one, BPF_NOEXIST)) {
		cnt = bpf_map_lookup_elem(&stack_counts, &key);
		if (cnt)
			__sync_fetch_and_add(cnt, 1);
		else
			count(&stats, MDT_STAT_AGG_FULL);
	}
}

static __always_inline bool in_machinery(__u64 link_addr)
{
	for (int i = 0; i < MDT_MAX_MACHINERY; i++) {
		__u64 start = mdt_machinery[i].start;

		if (!start)
			return false;
		if (link_addr >= start && link_addr < mdt_machinery[i].end)
			return true;
	}
	return false;
}

/*
 * A reflect delete returns into reflect's code, not into the code that
 * asked for it: step up the frame-pointer chain (BP is still the caller's
 * frame pointer at the probe) while the return address lies in one of
 * mdt_machinery's functions. Costs nothing more for a plain delete.
 */
static __always_inline void skip_machinery(struct pt_regs *ctx, struct mdt_site_key *key, __u32 id)
{
	struct {
		__u64 fp;
		__u64 ret;
	} frame;
	__u64 bias, fp = GO_FP(ctx);

	if (!mdt_machinery[0].start || id >= MDT_MAX_PROBES)
		return;
	bias = GO_PC(ctx) - mdt_probe_va[id];
	for (int hop = 0; hop < MDT_MAX_CALLER_HOPS; hop++) {
		if (!in_machinery(key->caller - bias))
			return;
		if (!fp || bpf_probe_read_user(&frame, sizeof(frame), (const void *)fp) || !frame.ret)
			return;
		key->caller = frame.ret;
		fp = frame.fp;
	}
}

/*
 * Site counting: one more hit of (map type, caller, probe). The caller is
 * the return address at [SP] (the probe sits before the frame setup), past
 * reflect's frames.
 */
static __always_inline void count_site(struct pt_regs *ctx, __u32 id, __u8 kind,
				       struct mdt_site_key *out)
{
	/* Both registers are read first: the verifier refuses a context
	 * access at a computed offset. */
	__u64 a0 = GO_ARG0(ctx), a1 = GO_ARG1(ctx);
	struct mdt_site_key key = {
		.pc = GO_PC(ctx),
		.probe_id = id,
	};
	struct mdt_site_count one = { .hits = 1 }, *cnt;
	bool swiss = kind == MDT_KIND_SWISS_DELETE || kind == MDT_KIND_SWISS_CLEAR;

	barrier_var(a0);
	barrier_var(a1);
	key.map_type_ptr = swiss ? a1 : a0;
	one.last_map = swiss ? a0 : a1;

	if (bpf_probe_read_user(&key.caller, sizeof(key.caller), (const void *)GO_SP(ctx)))
		key.caller = 0;
	else
		skip_machinery(ctx, &key, id);
	if (out)
		*out = key;
	cnt = bpf_map_lookup_elem(&site_counts, &key);
	if (cnt) {
		__sync_fetch_and_add(&cnt->hits, 1);
		cnt->last_map = one.last_map;
		return;
	}
	/* Another CPU (or a program that preempted this one) may have
	 * inserted the key meanwhile: then add to this CPU's count of it. */
	if (bpf_map_update_elem(&site_counts, &key, &one, BPF_NOEXIST)) {
		cnt = bpf_map_lookup_elem(&site_counts, &key);
		if (cnt) {
			__sync_fetch_and_add(&cnt->hits, 1);
			cnt->last_map = one.last_map;
		} else {
			count(&stats, MDT_STAT_SITES_FULL);
		}
	}
}

/*
 * The goroutine id and the goroutine's stack top, with one read of the
 * head of runtime.g: g.stack = {lo, hi} is its first field in every Go
 * release (the runtime's assembly relies on it), the goid a little further.
 */
static __always_inline void read_g(struct scratch *s, __u64 g)
{
	__u32 goid_off = mdt_cfg.goid_offset;
	/* Constants after load: the verifier sees one size. */
	__u32 head = goid_off ? goid_off + 8 : 16;

	if (mdt_cfg.labels_offset + 8 > head)
		head = mdt_cfg.labels_offset + 8;
	s->stack_hi = 0;
	s->g_ok = 0;
	if (!g || head > MDT_G_HEAD_BYTES || bpf_probe_read_user(s->g_head, head, (const void *)g)) {
		s->ev.flags |= MDT_EV_GOID_FAULT;
		return;
	}
	s->g_ok = 1;
	s->stack_hi = s->g_head[1];
	if (goid_off)
		s->ev.goid = s->g_head[goid_off / 8];
	else
		s->ev.flags |= MDT_EV_GOID_FAULT;
}

/*
 * Goroutine labels (runtime/pprof.Do, SetGoroutineLabels). g.labels points
 * at an immutable label set that a later label change replaces, never
 * edits, so what is read here is what the goroutine had at the call. First
 * the string headers of its keys and values are gathered into s->lhdr, by
 * the layout of its Go release; then their bytes are copied into s->lab.
 */

/* Go 1.24+: the set is {[]label}, a slice of {key, value string}. */
static __always_inline void label_headers_slice(struct scratch *s, __u64 set)
{
	__u64 slice[2];
	__u64 n;

	if (bpf_probe_read_user(slice, sizeof(slice), (const void *)set))
		goto fault;
	n = slice[MDT_GO_SLICE_LEN / 8];
	if (n > MDT_MAX_LABELS) {
		s->ev.labels_flags |= MDT_LABELS_MORE;
		n = MDT_MAX_LABELS;
	}
	if (!n)
		return;
	if (bpf_probe_read_user(s->lhdr, n * MDT_GO_LABEL_SIZE, (const void *)slice[0]))
		goto fault;
	s->lab_n = n;
	return;
fault:
	s->ev.labels_flags |= MDT_LABELS_FAULT;
}

/* The full slots of the bucket in s->bucket, appended to s->lhdr. */
static __always_inline void label_bucket_entries(struct scratch *s)
{
	for (__u32 i = 0; i < 8; i++) {
		__u32 k = MDT_GO_LABEL_BUCKET_KEYS / 8 + 2 * i;
		__u32 v = MDT_GO_LABEL_BUCKET_VALUES / 8 + 2 * i;
		/* Read back from the map: unknown to the verifier, so the
		 * slots' paths meet again instead of multiplying. */
		__u32 n = s->lab_n;

		if (((__u8 *)s->bucket)[i] < MDT_GO_MIN_TOPHASH || n >= MDT_MAX_LABELS)
			continue;
		/* A no-op (n < MDT_MAX_LABELS, a power of two) that the
		 * compiler must keep, for the verifier. */
		barrier_var(n);
		n &= MDT_MAX_LABELS - 1;
		s->lhdr[4 * n] = s->bucket[k];
		s->lhdr[4 * n + 1] = s->bucket[k + 1];
		s->lhdr[4 * n + 2] = s->bucket[v];
		s->lhdr[4 * n + 3] = s->bucket[v + 1];
		s->lab_n = n + 1;
	}
}

/*
 * Go <= 1.23: the set points at a map[string]string (a classic map): its
 * entries are the bucket slots whose tophash marks them full, in the
 * buckets and their overflow chains. Entries past the buckets read, or not
 * yet moved out of the old buckets of a map that was growing, are counted
 * as more than the record holds.
 */
static __always_inline void label_headers_map(struct scratch *s, __u64 set)
{
	__u64 hmap, hdr[4], buckets, overflow;
	__u32 nb, B;

	if (bpf_probe_read_user(&hmap, sizeof(hmap), (const void *)set))
		goto fault;
	if (!hmap)
		return;
	if (bpf_probe_read_user(hdr, sizeof(hdr), (const void *)hmap))
		goto fault;
	if (!hdr[0])
		return;
	B = ((__u8 *)hdr)[MDT_GO_HMAP_B];
	nb = B >= 3 ? MDT_MAX_LABEL_BUCKETS : 1U << B;
	buckets = hdr[MDT_GO_HMAP_BUCKETS / 8];
	s->lab_at = buckets;
	s->lab_main = 0;
	for (__u32 b = 0; b < MDT_MAX_LABEL_BUCKETS; b++) {
		if (!s->lab_at || s->lab_n >= MDT_MAX_LABELS)
			break;
		if (bpf_probe_read_user(s->bucket, sizeof(s->bucket), (const void *)s->lab_at))
			goto fault;
		label_bucket_entries(s);
		overflow = s->bucket[MDT_GO_LABEL_BUCKET_OVERFLOW / 8];
		if (overflow) {
			s->lab_at = overflow;
		} else {
			s->lab_main++;
			s->lab_at = s->lab_main < nb
				? buckets + (__u64)s->lab_main * MDT_GO_LABEL_BUCKET_SIZE : 0;
		}
	}
	if (s->lab_n < hdr[0])
		s->ev.labels_flags |= MDT_LABELS_MORE;
	return;
fault:
	s->ev.labels_flags |= MDT_LABELS_FAULT;
}

/*
 * Bytes of a label string to copy: at most `max` (label_bytes for a value,
 * MDT_MAX_LABEL_BYTES for a key, so that a key --labels names is never cut
 * short of itself); *cut if fewer.
 */
static __always_inline __u32 label_len(__u64 len, __u32 max, __u8 *flags, __u8 cut)
{
	if (max > MDT_MAX_LABEL_BYTES)
		max = MDT_MAX_LABEL_BYTES;
	if (len > max) {
		*flags |= cut;
		return max;
	}
	return len;
}

/*
 * --labels KEY,...: whether a key of `len` bytes could be one of them (by
 * its length: then nothing of it is read when it cannot), and whether its
 * first bytes `head` (at most 8, zero-padded) are one's. A prefilter: user
 * space compares the whole keys.
 */
static __always_inline bool label_len_wanted(__u64 len)
{
	for (__u32 k = 0; k < MDT_MAX_LABEL_KEYS; k++)
		if (k < mdt_cfg.label_keys && mdt_cfg.label_key_len[k] == len)
			return true;
	return false;
}

static __always_inline bool label_head_wanted(__u64 len, __u64 head)
{
	for (__u32 k = 0; k < MDT_MAX_LABEL_KEYS; k++)
		if (k < mdt_cfg.label_keys && mdt_cfg.label_key_len[k] == len &&
		    mdt_cfg.label_key_head[k] == head)
			return true;
	return false;
}

/*
 * Label i of s->lhdr, as a struct mdt_label, at s->lab[s->lab_off] (or
 * nothing, for a key --labels does not want). Returns 1 when there is no
 * room left.
 */
static __always_inline int copy_label(struct scratch *s, __u32 i)
{
	__u32 off = s->lab_off, kn, vn;
	__u64 klen, head = 0;
	__u8 flags = 0;

	if (off > MDT_LABEL_AREA - (4 + 2 * MDT_MAX_LABEL_BYTES) || i >= MDT_MAX_LABELS)
		return 1;
	klen = s->lhdr[4 * i + 1];
	if (mdt_cfg.label_keys && !label_len_wanted(klen))
		return 0;
	kn = label_len(klen, MDT_MAX_LABEL_BYTES, &flags, MDT_LABEL_KEY_CUT);
	vn = label_len(s->lhdr[4 * i + 3], mdt_cfg.label_bytes, &flags, MDT_LABEL_VALUE_CUT);
	barrier_var(kn);
	barrier_var(vn);
	if (kn > MDT_MAX_LABEL_BYTES || vn > MDT_MAX_LABEL_BYTES)
		return 1;
	if (kn && bpf_probe_read_user(&s->lab[off + 4], kn, (const void *)s->lhdr[4 * i])) {
		flags |= MDT_LABEL_FAULT;
		kn = vn = 0;
	} else if (mdt_cfg.label_keys) {
		__builtin_memcpy(&head, &s->lab[off + 4], 8);
		if (kn < 8)
			head &= (1ULL << (8 * kn)) - 1;
		if (!label_head_wanted(klen, head))
			return 0;
	}
	if (vn && bpf_probe_read_user(&s->lab[off + 4 + kn], vn, (const void *)s->lhdr[4 * i + 2])) {
		flags |= MDT_LABEL_FAULT;
		kn = vn = 0;
	}
	s->lab[off] = kn;
	s->lab[off + 1] = vn;
	s->lab[off + 2] = flags;
	s->lab[off + 3] = 0;
	s->lab_off = off + 4 + kn + vn;
	s->ev.labels++;
	return 0;
}

/*
 * The goroutine's label set `set` (g.labels), into s->lab: s->lab_off
 * bytes, s->ev.labels labels (read_labels takes the length from the scratch
 * space, not from the return value). A global function, as the stack
 * walk is: the verifier checks it once, on its own; its loops keep their
 * state in the scratch space, so that each iteration's paths meet again.
 */
__noinline int mdt_read_labels(struct scratch *s, __u64 set)
{
	if (!s)
		return 0;
	s->lab_n = 0;
	s->lab_off = 0;
	if (mdt_cfg.label_store == MDT_LABELS_SLICE)
		label_headers_slice(s, set);
	else if (mdt_cfg.label_store == MDT_LABELS_MAP)
		label_headers_map(s, set);
	for (__u32 i = 0; i < MDT_MAX_LABELS; i++) {
		if (i >= s->lab_n)
			break;
		if (copy_label(s, i)) {
			s->ev.labels_flags |= MDT_LABELS_MORE;
			break;
		}
	}
	return 0;
}

/*
 * The goroutine's labels (g.labels, read with the head of g), copied to dst
 * (right after the record's key bytes). Returns the bytes put there.
 */
static __always_inline __u32 read_labels(struct scratch *s, __u8 *dst)
{
	__u64 set;
	__u32 bytes;

	if (!mdt_cfg.labels_offset || mdt_cfg.labels_offset > MDT_G_HEAD_BYTES - 8 || !s->g_ok)
		return 0;
	set = s->g_head[mdt_cfg.labels_offset / 8];
	if (!set)
		return 0;
	mdt_read_labels(s, set);
	/* From the scratch space (a u32), not the global function's return
	 * value: the verifier knows nothing of that one's sign. */
	bytes = s->lab_off;
	if (!bytes || bytes > MDT_LABEL_AREA)
		return 0;
	if (bpf_probe_read_kernel(dst, bytes, s->lab)) {
		s->ev.labels = 0;
		s->ev.labels_flags |= MDT_LABELS_FAULT;
		return 0;
	}
	s->ev.labels_n = bytes;
	return bytes;
}

/* Which attach point fired: MDT_MAX_PROBES if none. */
static __always_inline __u32 probe_id(struct pt_regs *ctx)
{
	__u64 cookie;

	if (mdt_cfg.probe_by_pc)
		return mdt_probe_by_pc[GO_PC(ctx) & 4095];
	cookie = bpf_get_attach_cookie(ctx);
	return cookie < MDT_MAX_PROBES ? (__u32)cookie : MDT_MAX_PROBES;
}

/*
 * Count the hit (exact, whatever the sampling) and return how many hits of
 * this probe this CPU had before it: the sequence number sampling hashes.
 */
static __always_inline __u64 count_hit(__u32 id)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &id);

	return v ? __sync_fetch_and_add(v, 1) : 0;
}

/*
 * Sampling: does hit number `seq` (of this probe, on this CPU) get a
 * record? Fibonacci hashing of the sequence number chooses a share of
 * exactly sample_threshold / 2^32, evenly spread, and is cheaper than a
 * random number from a helper call on the path most hits take.
 */
static __always_inline bool sampled_in(__u64 seq)
{
	if (mdt_cfg.sample_threshold >= (1ULL << 32))
		return true;
	return ((seq * 0x9e3779b97f4a7c15ULL) >> 32) < mdt_cfg.sample_threshold;
}

static __always_inline bool is_clear(__u8 kind)
{
	return kind == MDT_KIND_CLEAR || kind == MDT_KIND_SWISS_CLEAR;
}

/* The map and its type, by the probe's argument layout. */
static __always_inline void map_args(struct pt_regs *ctx, __u8 kind, __u64 *map, __u64 *map_type)
{
	__u64 a0 = GO_ARG0(ctx), a1 = GO_ARG1(ctx);

	if (kind == MDT_KIND_SWISS_DELETE || kind == MDT_KIND_SWISS_CLEAR) {
		*map = a0; /* receiver first */
		*map_type = a1;
	} else {
		*map_type = a0;
		*map = a1;
	}
}

/* The map's element count (0 for a nil map); nonzero if unreadable. */
static __always_inline int read_map_len(__u64 map, __u64 *len)
{
	*len = 0;
	if (!map)
		return 0;
	return bpf_probe_read_user(len, sizeof(*len), (const void *)(map + mdt_cfg.map_count_offset));
}

/*
 * Latency: leave this call's pending entry for its exit, timestamped now
 * (the last thing the entry probe does, so the duration is the call's).
 * A goroutine's earlier call of the same function still pending never
 * returned: counted, and replaced.
 */
static __always_inline void leave_pending(struct pt_regs *ctx, struct pending *p, __u32 id)
{
	struct pending_key key = { .g = GO_G(ctx), .probe_id = id };
	struct pending *old;

	p->gen = mdt_exits_gen;
	p->start_ns = bpf_ktime_get_ns();
	if (!p->ts_ns)
		p->ts_ns = p->start_ns;
	if (!bpf_map_update_elem(&pending, &key, p, BPF_NOEXIST)) {
		__sync_fetch_and_add(&mdt_exits_in_flight, 1);
		return;
	}
	/* One is there: of this arming, a call that never returned (it stays
	 * in flight: this one takes its place); of an earlier one, stale. */
	old = bpf_map_lookup_elem(&pending, &key);
	if (old && old->gen == p->gen)
		count(&stats, MDT_STAT_PENDING_REPLACED);
	else
		__sync_fetch_and_add(&mdt_exits_in_flight, 1);
	bpf_map_update_elem(&pending, &key, p, BPF_ANY);
}

/* Latency: the map and its count at the entry of a call without a record. */
static __always_inline void pending_of_unsampled(struct pt_regs *ctx, struct pending *p, __u8 kind)
{
	map_args(ctx, kind, &p->map_ptr, &p->site.map_type_ptr);
	if (!is_clear(kind) && read_map_len(p->map_ptr, &p->map_len))
		p->len_fault = 1;
}

/*
 * Crash forensics: the bucket of now in the counts by time (mdt_window):
 * the jiffies, a variable, where user space knows the tick's length; else
 * the monotonic clock, whose reading (~30 ns here) goes to *now.
 */
static __always_inline __u64 time_bucket(__u64 *now)
{
	if (mdt_cfg.tick_ns)
		return bpf_jiffies64() >> (mdt_cfg.tick_shift & 7);
	*now = bpf_ktime_get_ns();
	return *now >> MDT_WINDOW_SHIFT;
}

/*
 * Crash forensics: this hit in this CPU's counts by time; returns its
 * bucket. A slot is rewritten by the first hit of its bucket (once per
 * 4 ms per CPU), not per hit.
 */
static __always_inline __u64 count_in_window(__u8 kind, __u64 *now)
{
	__u32 zero = 0;
	struct mdt_window *w;
	__u64 epoch;
	__u32 i;

	if (!mdt_cfg.windows)
		return 0;
	w = bpf_map_lookup_elem(&windows, &zero);
	if (!w)
		return 0;
	epoch = time_bucket(now);
	i = epoch & (MDT_WINDOW_BUCKETS - 1);
	if (w->epoch[i] != epoch) {
		w->deletes_at[i] = w->deletes;
		w->clears_at[i] = w->clears;
		w->epoch[i] = epoch;
	}
	if (is_clear(kind))
		__sync_fetch_and_add(&w->clears, 1);
	else
		__sync_fetch_and_add(&w->deletes, 1);
	return epoch;
}

/* The probe body, shared by the two attach flavours below. */
static __always_inline int on_delete(struct pt_regs *ctx)
{
	__u32 id = probe_id(ctx), zero = 0;
	/* Latency: this call's pending entry; zeroed only when it is made, so
	 * that a call without exit probes pays nothing for it. */
	struct pending pend;
	struct task_struct *task;
	bool latency;
	__u64 seq, g, ts, clock = 0, tick;
	__u32 words, key_n, labels_n;
	struct mdt_event *e;
	__u64 seen;
	struct scratch *s;
	__u8 kind;

	if (id >= MDT_MAX_PROBES) {
		count(&stats, MDT_STAT_BAD_PROBE);
		return 0;
	}
	/* Another process (a fork of the target): not ours, not counted. */
	if (mdt_cfg.check_tgid && mdt_cfg.target_tgid &&
	    bpf_get_current_pid_tgid() >> 32 != mdt_cfg.target_tgid)
		return 0;
	/* Before the hit is counted: a hit of no known probe is no delete. */
	kind = mdt_cfg.probes[id].kind;
	if (kind == MDT_KIND_UNSET || kind > MDT_KIND_SWISS_CLEAR) {
		count(&stats, MDT_STAT_BAD_PROBE);
		return 0;
	}
	seq = count_hit(id);
	/* The record carries the bucket its hit was counted in by time, so a
	 * record is in a fatal error's window iff the window counted it. */
	tick = count_in_window(kind, &clock);
	latency = mdt_cfg.exits && mdt_exits_armed && mdt_cfg.probes[id].has_exits;
	if (latency)
		__builtin_memset(&pend, 0, sizeof(pend));
	if (mdt_cfg.count_sites)
		count_site(ctx, id, kind, &pend.site);
	if (!sampled_in(seq)) {
		if (latency) {
			pending_of_unsampled(ctx, &pend, kind);
			leave_pending(ctx, &pend, id);
		}
		return 0;
	}
	/* Without sampling every hit gets a record: nothing to count. */
	if (mdt_cfg.sample_threshold < (1ULL << 32))
		count(&stats, MDT_STAT_SAMPLED_IN);
	/* The record's time, read as close to its count by time as a hit
	 * without a record allows. */
	if (!clock)
		clock = bpf_ktime_get_ns();

	s = bpf_map_lookup_elem(&scratch_space, &zero);
	if (!s)
		return 0;
	seen = ++s->entries;
	e = &s->ev;
	/* The header is rewritten in full; key[] and stack[] are read only as
	 * far as key_len and stack_depth say. */
	__builtin_memset(e, 0, offsetof(struct mdt_event, stack));

	/* The task's ids by plain loads: bpf_get_current_task_btf() is inlined
	 * (a per-CPU load), bpf_get_current_pid_tgid() is a call. */
	task = bpf_get_current_task_btf();
	e->pid = task->tgid;
	e->tid = task->pid;
	e->probe_id = id;
	e->kind = kind;

	g = GO_G(ctx);
	read_g(s, g);

	map_args(ctx, kind, &e->map_ptr, &e->map_type_ptr);
	if (read_map_len(e->map_ptr, &e->map_len))
		e->flags |= MDT_EV_LEN_FAULT;

	mdt_walk_stack(s, GO_PC(ctx), GO_SP(ctx), GO_FP(ctx));
	if (latency) {
		pend.map_ptr = e->map_ptr;
		pend.map_len = e->map_len;
		pend.len_fault = !!(e->flags & MDT_EV_LEN_FAULT);
		pend.goid = e->goid;
		pend.site.map_type_ptr = e->map_type_ptr;
	}
	if (mdt_cfg.aggregate) {
		aggregate(s, &pend.agg);
		if (latency)
			leave_pending(ctx, &pend, id);
		return 0;
	}
	words = stack_words_to_send(s);
	barrier_var(words);
	if (words > MDT_MAX_STACK_DEPTH) /* for the verifier */
		return 0;
	key_n = read_key_arg(ctx, s, words, (__u8 *)&e->stack[words], kind);
	barrier_var(key_n);
	if (key_n > MDT_MAX_KEY_BYTES) /* for the verifier */
		return 0;
	labels_n = read_labels(s, (__u8 *)&e->stack[words] + key_n);
	/* Another hit on this CPU preempted this one and reused the scratch
	 * space: the labels may be its goroutine's. Sent without them. */
	if (s->entries != seen) {
		e->labels = 0;
		e->labels_n = 0;
		e->labels_flags |= MDT_LABELS_FAULT;
		labels_n = 0;
	}
	key_n += labels_n;
	e->exit_expected = latency;
	/* One clock reading for the record and its pending entry (not read
	 * back from the per-CPU scratch, which a preempting probe may reuse):
	 * the exit record names its entry by it. */
	ts = clock;
	e->ts_ns = ts;
	e->tick = tick;
	pend.ts_ns = ts;
	pend.sent = submit(s, words, key_n);
	if (latency)
		leave_pending(ctx, &pend, id);
	return 0;
}

/* Latency: the histogram bucket of a duration (bounds set by user space). */
static __always_inline __u32 latency_bucket(__u64 ns)
{
	for (__u32 i = 0; i < MDT_LATENCY_BOUNDS; i++)
		if (ns <= mdt_latency_bounds[i])
			return i;
	return MDT_LATENCY_BOUNDS;
}

static __always_inline void count_latency(__u64 map_type, __u32 entry, __u64 ns)
{
	struct mdt_latency_key key = { .map_type_ptr = map_type, .probe_id = entry };
	__u32 b = latency_bucket(ns);
	struct mdt_latency *h;

	if (b > MDT_LATENCY_BOUNDS) /* for the verifier */
		return;
	h = bpf_map_lookup_elem(&latency, &key);
	if (!h) {
		/* A new (map type, probe): rare, so the zeroed value may cost stack. */
		struct mdt_latency zero = {};

		bpf_map_update_elem(&latency, &key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&latency, &key);
		if (!h) {
			count(&stats, MDT_STAT_LATENCY_FULL);
			return;
		}
	}
	__sync_fetch_and_add(&h->buckets[b], 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
}

/*
 * Latency: the exit of a call whose entry left a pending entry. Counts its
 * outcome and duration (exact, whatever the sampling), and sends an
 * mdt_exit if its entry sent a record.
 */
static __always_inline int on_return(struct pt_regs *ctx)
{
	__u64 now = bpf_ktime_get_ns();
	/* Always the attach cookie: the pc table (mdt_probe_by_pc) is kept
	 * for the entries, on the hot path; this program runs only while
	 * latency is measured. */
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 id = cookie < MDT_MAX_PROBES ? (__u32)cookie : MDT_MAX_PROBES, entry;
	struct pending_key key = {};
	struct mdt_site_count *site;
	struct mdt_outcome *o;
	struct mdt_exit x = {};
	struct pending p, *found;
	__u64 ns, len = 0;
	__u32 gen;
	bool removed = false, known = false, clear;

	if (id >= MDT_MAX_PROBES || mdt_cfg.probes[id].kind != MDT_KIND_EXIT) {
		count(&stats, MDT_STAT_BAD_PROBE);
		return 0;
	}
	if (mdt_cfg.check_tgid && mdt_cfg.target_tgid &&
	    bpf_get_current_pid_tgid() >> 32 != mdt_cfg.target_tgid)
		return 0;
	gen = mdt_exits_gen;
	entry = mdt_cfg.probes[id].entry;
	if (entry >= MDT_MAX_PROBES) {
		count(&stats, MDT_STAT_BAD_PROBE);
		return 0;
	}
	/* Read while the verifier still knows entry's bounds. */
	clear = is_clear(mdt_cfg.probes[entry].kind);
	key.g = GO_G(ctx);
	key.probe_id = entry;
	found = bpf_map_lookup_elem(&pending, &key);
	if (found && found->gen != gen) {
		/* Left by an earlier arming: not this call's. */
		bpf_map_delete_elem(&pending, &key);
		found = NULL;
	}
	if (!found) {
		/* Expected while arming and quiescing (calls that began outside
		 * the window); a health counter otherwise. */
		if (mdt_exits_armed)
			count(&stats, MDT_STAT_EXIT_UNMATCHED);
		return 0;
	}
	p = *found;
	if (bpf_map_delete_elem(&pending, &key))
		return 0; /* another exit of this call took it: cannot happen */
	__sync_fetch_and_add(&mdt_exits_in_flight, -1);
	ns = now > p.start_ns ? now - p.start_ns : 0;
	if (!clear && !p.len_fault && !read_map_len(p.map_ptr, &len)) {
		known = true;
		removed = len < p.map_len;
	}

	o = bpf_map_lookup_elem(&outcomes, &entry);
	if (o) {
		__sync_fetch_and_add(&o->matched, 1);
		__sync_fetch_and_add(&o->total_ns, ns);
		if (known)
			__sync_fetch_and_add(removed ? &o->removed : &o->absent, 1);
	}
	if (mdt_cfg.count_sites && known) {
		site = bpf_map_lookup_elem(&site_counts, &p.site);
		if (site) {
			__sync_fetch_and_add(removed ? &site->removed : &site->absent, 1);
			__sync_fetch_and_add(&site->total_ns, ns);
		}
	}
	count_latency(p.site.map_type_ptr, entry, ns);
	if (mdt_cfg.weight_latency && p.agg.stack_hash) {
		__u64 *sum = bpf_map_lookup_elem(&stack_ns, &p.agg);

		if (sum)
			__sync_fetch_and_add(sum, ns);
		else if (bpf_map_update_elem(&stack_ns, &p.agg, &ns, BPF_NOEXIST)) {
			sum = bpf_map_lookup_elem(&stack_ns, &p.agg);
			if (sum)
				__sync_fetch_and_add(sum, ns);
			else
				count(&stats, MDT_STAT_AGG_FULL);
		}
	}
	if (!p.sent)
		return 0;
	x.ts_ns = now;
	x.entry_ts_ns = p.ts_ns;
	x.goid = p.goid;
	x.duration_ns = ns;
	x.probe_id = entry;
	x.flags = (removed ? MDT_EXIT_REMOVED : 0) | (!clear && !known ? MDT_EXIT_LEN_FAULT : 0);
	if (bpf_ringbuf_output(&events, &x, sizeof(x), wakeup_flags(sizeof(x))))
		count(&stats, MDT_STAT_EXITS_LOST);
	else
		count(&stats, MDT_STAT_EXITS_SENT);
	return 0;
}

/*
 * One program per attach interface. uprobe.multi (Linux 6.6+) arms every
 * attach point with one syscall, and disarms them with one grace period
 * instead of one per probe: seconds saved on a loaded machine. Plain
 * uprobes are the fallback for older kernels. User space loads one.
 */
SEC("uprobe")
int mdt_map_delete(struct pt_regs *ctx)
{
	return on_delete(ctx);
}

SEC("uprobe.multi")
int mdt_map_delete_multi(struct pt_regs *ctx)
{
	return on_delete(ctx);
}

/* The exit points (MDT_KIND_EXIT), in the same two flavours. */
SEC("uprobe")
int mdt_map_return(struct pt_regs *ctx)
{
	return on_return(ctx);
}

SEC("uprobe.multi")
int mdt_map_return_multi(struct pt_regs *ctx)
{
	return on_return(ctx);
}

/*
 * Crash forensics. runtime.fatal(s string) is where a Go program dies of
 * map misuse ("concurrent map writes", ...; docs/go-runtime.md §8.2): the
 * message is in AX (data) and BX (length) at its entry, and the probe sits
 * there, before its frame setup, as the stack walk needs. The record goes
 * out before the process can die (BPF_RB_FORCE_WAKEUP), and the first one
 * of the process stops it (SIGSTOP, delivered as the probe returns to user
 * mode, so this thread stops before runtime.fatal runs) for user space to
 * read its other threads' registers (mdt_threads) and resume it.
 */

/* What a fatal probe sums over the CPUs' windows (bpf_loop's context). */
struct window_sum {
	__u64 first; /* the window's first bucket */
	__u64 last;  /* the bucket of the probe */
	__u64 deletes;
	__u64 clears;
};

static long sum_cpu_window(__u64 cpu, struct window_sum *ws)
{
	__u32 zero = 0;
	struct mdt_window *w = bpf_map_lookup_percpu_elem(&windows, &zero, cpu);

	if (!w)
		return 1;
	/* The first bucket of the window this CPU had a hit in. */
	for (__u32 k = 0; k < MDT_WINDOW_BUCKETS; k++) {
		__u64 epoch = ws->first + k;
		__u32 i = epoch & (MDT_WINDOW_BUCKETS - 1);

		if (epoch > ws->last)
			break;
		if (w->epoch[i] == epoch) {
			ws->deletes += w->deletes - w->deletes_at[i];
			ws->clears += w->clears - w->clears_at[i];
			break;
		}
	}
	return 0;
}

static __always_inline void count_window(struct mdt_fatal *f, __u64 now)
{
	struct window_sum ws = {};
	__u64 window = mdt_cfg.fatal_window_ns, clock = 0, span;

	if (!mdt_cfg.windows)
		return;
	if (window > now)
		window = now;
	ws.last = time_bucket(&clock);
	if (mdt_cfg.tick_ns) {
		/* The whole ticks that cover the window, however far into the
		 * last one now is. */
		span = (window + mdt_cfg.tick_ns - 1) / mdt_cfg.tick_ns;
		ws.first = ws.last - span;
		f->window_start_ns = now - span * mdt_cfg.tick_ns;
	} else {
		ws.first = (now - window) >> MDT_WINDOW_SHIFT;
		f->window_start_ns = ws.first << MDT_WINDOW_SHIFT;
	}
	f->window_tick = ws.first;
	bpf_loop(mdt_cfg.nr_cpus < MDT_MAX_CPUS ? mdt_cfg.nr_cpus : MDT_MAX_CPUS, sum_cpu_window,
		 &ws, 0);
	f->window_deletes = ws.deletes;
	f->window_clears = ws.clears;
}

/*
 * Whether mdt, without CAP_KILL, may send the dying process SIGCONT: the
 * kernel's rule for kill() is checked against the process (its thread
 * group leader, which kill(pid) finds), whose real or saved uid must be
 * mdt's effective uid (mdt_cfg.hold_uid).
 */
static __always_inline bool may_resume(void)
{
	struct task_struct *leader = BPF_CORE_READ(bpf_get_current_task_btf(), group_leader);
	__u32 uid = BPF_CORE_READ(leader, real_cred, uid.val);
	__u32 suid = BPF_CORE_READ(leader, real_cred, suid.val);

	return uid == mdt_cfg.hold_uid || suid == mdt_cfg.hold_uid;
}

/* Stop the process, once: see mdt_fatal_hold. */
static __always_inline void hold(struct mdt_fatal *f)
{
	if (__sync_val_compare_and_swap(&mdt_fatal_stopped, 0, 1) != 0) {
		f->flags |= MDT_FATAL_NOT_FIRST;
		return;
	}
	if (!mdt_fatal_hold)
		return;
	if (mdt_cfg.hold_uid != MDT_HOLD_ANY_UID && !may_resume()) {
		f->flags |= MDT_FATAL_HOLD_DENIED;
		return;
	}
	if (bpf_send_signal(19 /* SIGSTOP */)) {
		f->flags |= MDT_FATAL_HOLD_FAILED;
		return;
	}
	f->flags |= MDT_FATAL_HELD;
	__sync_fetch_and_add(&mdt_fatal_holds, 1);
}

static __always_inline int on_fatal(struct pt_regs *ctx)
{
	__u32 zero = 0, n;
	struct task_struct *task;
	struct mdt_fatal *f;
	struct scratch *s;
	__u64 len, now;

	/* A fork of the target dying is not the target dying. */
	if (mdt_cfg.check_tgid && mdt_cfg.target_tgid &&
	    bpf_get_current_pid_tgid() >> 32 != mdt_cfg.target_tgid)
		return 0;
	now = bpf_ktime_get_ns();
	s = bpf_map_lookup_elem(&scratch_space, &zero);
	if (!s)
		return 0;
	f = bpf_ringbuf_reserve(&fatals, sizeof(*f), 0);
	if (!f) {
		/* Not stopped either: no record would tell user space to
		 * resume it. */
		count(&stats, MDT_STAT_FATALS_LOST);
		return 0;
	}
	__builtin_memset(f, 0, offsetof(struct mdt_fatal, stack));
	task = bpf_get_current_task_btf();
	f->pid = task->tgid;
	f->tid = task->pid;
	f->ts_ns = now;

	s->ev.flags = 0;
	s->ev.goid = 0;
	s->ev.labels = 0;
	s->ev.labels_flags = 0;
	s->ev.labels_n = 0;
	read_g(s, GO_G(ctx));
	f->goid = s->ev.goid;
	if (s->ev.flags & MDT_EV_GOID_FAULT)
		f->flags |= MDT_FATAL_GOID_FAULT;

	len = GO_ARG1(ctx);
	f->msg_len = len > 0xffffffff ? 0xffffffff : len;
	n = len < MDT_MAX_FATAL_MSG ? len : MDT_MAX_FATAL_MSG;
	barrier_var(n);
	if (n > MDT_MAX_FATAL_MSG) /* for the verifier */
		n = MDT_MAX_FATAL_MSG;
	if (n && bpf_probe_read_user(f->msg, n, (const void *)GO_ARG0(ctx)))
		f->flags |= MDT_FATAL_MSG_FAULT;

	mdt_walk_stack(s, GO_PC(ctx), GO_SP(ctx), GO_FP(ctx));
	n = s->ev.stack_depth;
	if (n > MDT_MAX_STACK_DEPTH)
		n = MDT_MAX_STACK_DEPTH;
	f->stack_depth = n;
	if (s->ev.flags & MDT_EV_STACK_TRUNCATED)
		f->flags |= MDT_FATAL_STACK_TRUNCATED;
	bpf_probe_read_kernel(f->stack, sizeof(f->stack), s->ev.stack);

	f->labels_n = read_labels(s, f->label_room);
	f->labels = s->ev.labels;
	f->labels_flags = s->ev.labels_flags;

	count_window(f, now);
	hold(f);
	bpf_ringbuf_submit(f, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/*
 * The fatal probe in the same two flavours as the deletes': a plain uprobe
 * is a perf event, which the Linux 6.18 kernel mdt is tested on opens for
 * another process only with CAP_SYS_ADMIN (CAP_PERFMON was not enough:
 * docs/deploy.md); a uprobe.multi link needs no more than the deletes'
 * CAP_BPF and CAP_PERFMON.
 */
SEC("uprobe")
int mdt_fatal(struct pt_regs *ctx)
{
	return on_fatal(ctx);
}

SEC("uprobe.multi")
int mdt_fatal_multi(struct pt_regs *ctx)
{
	return on_fatal(ctx);
}

/*
 * Crash forensics: the user registers of each thread of mdt_threads_of,
 * one struct mdt_thread per thread (read by user space while the process
 * is stopped: then they are what each thread was running).
 */
SEC("iter/task")
int mdt_threads(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct mdt_thread t = {};
	struct pt_regs *regs;

	if (!task || !mdt_cfg.target_tgid || task->tgid != mdt_cfg.target_tgid)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return 0;
	t.tid = task->pid;
	t.state = task->__state;
	t.ip = BPF_CORE_READ(regs, ip);
	t.sp = BPF_CORE_READ(regs, sp);
	t.bp = BPF_CORE_READ(regs, bp);
	t.r14 = BPF_CORE_READ(regs, r14);
	t.fsbase = BPF_CORE_READ(task, thread.fsbase);
	bpf_seq_write(ctx->meta->seq, &t, sizeof(t));
	return 0;
}
