// SPDX-License-Identifier: GPL-2.0
/*
 * mdt.bpf.c -- uprobe program for Go map deletes.
 *
 * One program, `mdt_map_delete`, is attached to every map-delete function of
 * the target (runtime.mapdelete*, runtime.mapclear, ...), once per attach
 * point, each time with a different attach cookie = probe id. The probe id
 * selects the hit counter and the argument layout (mdt_cfg.probes[id].kind).
 *
 * Per hit: filter by target tgid, count the hit (exact, per-CPU), then --
 * subject to sampling -- read the Go register arguments, the map length,
 * the goroutine id, the key and the user stack, and submit a struct
 * mdt_event to the "events" ring buffer. Reservation failures are counted.
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
 * BTF anchors: unused globals that put these types into the object's BTF,
 * so that libbpf-cargo generates them in the skeleton's `types` module.
 */
struct mdt_event mdt_event_btf_anchor;
enum mdt_limits mdt_limits_btf_anchor;
enum mdt_kind mdt_kind_btf_anchor;
enum mdt_event_flags mdt_event_flags_btf_anchor;
enum mdt_stat mdt_stat_btf_anchor;

/* Hits per attach point (index = attach cookie). Exact: never sampled. */
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

/* Copy min(len, MDT_MAX_KEY_BYTES) key bytes from user memory. */
static __always_inline void read_key(struct mdt_event *e, __u64 src, __u64 len)
{
	__u32 n = len > MDT_MAX_KEY_BYTES ? MDT_MAX_KEY_BYTES : len;

	if (len > MDT_MAX_KEY_BYTES)
		e->flags |= MDT_EV_KEY_TRUNCATED;
	barrier_var(n);
	if (n > MDT_MAX_KEY_BYTES) /* for the verifier */
		return;
	if (n && bpf_probe_read_user(e->key, n, (const void *)src))
		e->flags |= MDT_EV_KEY_FAULT;
}

/* A key passed by pointer: its size is the Size_ (offset 0) of the key
 * *abi.Type found at map type + key_type_offset. */
static __always_inline void read_key_ptr(struct mdt_event *e, __u64 map_type, __u64 key_ptr)
{
	__u64 key_type = 0, size = 0;

	e->key_u64 = key_ptr;
	if (!mdt_cfg.key_type_offset)
		return;
	if (bpf_probe_read_user(&key_type, sizeof(key_type),
				(const void *)(map_type + mdt_cfg.key_type_offset)) ||
	    bpf_probe_read_user(&size, sizeof(size), (const void *)key_type)) {
		e->flags |= MDT_EV_KEY_FAULT;
		return;
	}
	e->key_len = size > 0xffffffffULL ? 0xffffffffU : (__u32)size;
	read_key(e, key_ptr, size);
}

/* stack[0] = pc, stack[1] = [SP], then the frame-pointer chain from BP. */
static __always_inline void walk_stack(struct pt_regs *ctx, struct mdt_event *e)
{
	__u32 max = mdt_cfg.max_stack_depth;
	__u64 fp = GO_FP(ctx), ret = 0;
	struct {
		__u64 next_fp;
		__u64 ret;
	} frame;
	__u32 i;

	if (max > MDT_MAX_STACK_DEPTH)
		max = MDT_MAX_STACK_DEPTH;
	if (max == 0)
		return;
	e->stack[0] = GO_PC(ctx);
	e->stack_depth = 1;
	if (bpf_probe_read_user(&ret, sizeof(ret), (const void *)GO_SP(ctx)) || !ret)
		return;
	if (max < 2) {
		e->flags |= MDT_EV_STACK_TRUNCATED;
		return;
	}
	e->stack[1] = ret;
	e->stack_depth = 2;

	for (i = 2; i < MDT_MAX_STACK_DEPTH; i++) {
		if (!fp || bpf_probe_read_user(&frame, sizeof(frame), (const void *)fp) ||
		    !frame.ret)
			return;
		if (i >= max) {
			e->flags |= MDT_EV_STACK_TRUNCATED;
			return;
		}
		e->stack[i] = frame.ret;
		e->stack_depth = i + 1;
		/* Frames live at increasing addresses; anything else ends the chain. */
		if (frame.next_fp <= fp)
			return;
		fp = frame.next_fp;
	}
	if (fp && !bpf_probe_read_user(&frame, sizeof(frame), (const void *)fp) && frame.ret)
		e->flags |= MDT_EV_STACK_TRUNCATED;
}

SEC("uprobe")
int mdt_map_delete(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 a0, a1, a2, g;
	struct mdt_event *e;
	__u32 id;
	__u8 kind;

	if (mdt_cfg.target_tgid && tgid != mdt_cfg.target_tgid) {
		count(&stats, MDT_STAT_OTHER_TGID);
		return 0;
	}
	if (cookie >= MDT_MAX_PROBES) {
		count(&stats, MDT_STAT_BAD_PROBE);
		return 0;
	}
	id = cookie;
	count(&hits, id);

	kind = mdt_cfg.probes[id].kind;
	if (kind == MDT_KIND_UNSET || kind > MDT_KIND_SWISS_CLEAR) {
		count(&stats, MDT_STAT_BAD_PROBE);
		return 0;
	}
	if (mdt_cfg.sample_threshold < (1ULL << 32) &&
	    bpf_get_prandom_u32() >= mdt_cfg.sample_threshold) {
		count(&stats, MDT_STAT_SAMPLED_OUT);
		return 0;
	}

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(&stats, MDT_STAT_RINGBUF_FULL);
		return 0;
	}
	/* Ring buffer memory is not zeroed. */
	__builtin_memset(e, 0, sizeof(*e));

	e->ts_ns = bpf_ktime_get_ns();
	e->pid = tgid;
	e->tid = (__u32)pid_tgid;
	e->probe_id = id;
	e->kind = kind;

	g = GO_G(ctx);
	e->g_ptr = g;
	if (!mdt_cfg.goid_offset || !g ||
	    bpf_probe_read_user(&e->goid, sizeof(e->goid), (const void *)(g + mdt_cfg.goid_offset)))
		e->flags |= MDT_EV_GOID_FAULT;

	a0 = GO_ARG0(ctx);
	a1 = GO_ARG1(ctx);
	a2 = GO_ARG2(ctx);
	if (kind == MDT_KIND_SWISS_DELETE || kind == MDT_KIND_SWISS_CLEAR) {
		e->map_ptr = a0; /* receiver first */
		e->map_type_ptr = a1;
	} else {
		e->map_type_ptr = a0;
		e->map_ptr = a1;
	}
	if (e->map_ptr &&
	    bpf_probe_read_user(&e->map_len, sizeof(e->map_len), (const void *)e->map_ptr))
		e->flags |= MDT_EV_LEN_FAULT;

	switch (kind) {
	case MDT_KIND_FAST32:
		e->key_u64 = (__u32)a2;
		e->key_len = 4;
		*(__u32 *)e->key = (__u32)a2;
		break;
	case MDT_KIND_FAST64:
		e->key_u64 = a2;
		e->key_len = 8;
		*(__u64 *)e->key = a2;
		break;
	case MDT_KIND_FASTSTR: {
		__u64 len = GO_ARG3(ctx);

		e->key_u64 = a2;
		e->key_len = len > 0xffffffffULL ? 0xffffffffU : (__u32)len;
		read_key(e, a2, len);
		break;
	}
	case MDT_KIND_KEY_PTR:
	case MDT_KIND_SWISS_DELETE:
		read_key_ptr(e, e->map_type_ptr, a2);
		break;
	default: /* the CLEAR kinds: no key */
		break;
	}

	walk_stack(ctx, e);

	bpf_ringbuf_submit(e, 0);
	count(&stats, MDT_STAT_SUBMITTED);
	return 0;
}
