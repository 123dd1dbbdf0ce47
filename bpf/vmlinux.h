/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmlinux.h for x86-64 -- TRIMMED, vendored.
 *
 * Generated on Linux 6.18 (x86-64) with:
 *
 *     bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux_full.h
 *
 * then trimmed (by a small script that keeps whole top-level declarations,
 * verbatim, in dump order except that the typedefs are moved first) to what
 * bpf/mdt.bpf.c and the libbpf headers (bpf_helpers.h, bpf_helper_defs.h,
 * bpf_tracing.h, bpf_core_read.h) need:
 *
 *   - the basic integer typedefs (__u8..__u64, __s8..__s64, u8..u64,
 *     s8..s64), __be16/__be32/__be64, __le16/__le32/__le64, __wsum, bool,
 *     and the anonymous enum defining true/false;
 *   - struct pt_regs (x86-64 user registers as saved on kernel entry) and
 *     the FRED types it embeds (struct fred_cs, struct fred_ss);
 *   - enum bpf_map_type (BPF_MAP_TYPE_*);
 *   - the anonymous enums holding BPF_ANY/BPF_NOEXIST/BPF_EXIST/BPF_F_LOCK,
 *     BPF_F_INDEX_MASK/BPF_F_CURRENT_CPU, BPF_RB_NO_WAKEUP/BPF_RB_FORCE_WAKEUP,
 *     BPF_RB_AVAIL_DATA/..., and BPF_F_USER_STACK/BPF_F_SKIP_FIELD_MASK/...
 *
 * and, written by hand with only the fields mdt reads (CO-RE finds them by
 * name in the running kernel): struct task_struct (__state, pid, tgid,
 * thread.fsbase), struct thread_struct, and the task iterator's context
 * (struct bpf_iter_meta, struct bpf_iter__task).
 *
 * struct pt_regs is declared under preserve_access_index, like in a full
 * vmlinux.h, so field accesses (and BPF_CORE_READ) are CO-RE relocated
 * against the running kernel's BTF. If you need another kernel type, copy
 * its declaration (and what it depends on) from a fresh full dump.
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

typedef signed char __s8;

typedef unsigned char __u8;

typedef short int __s16;

typedef short unsigned int __u16;

typedef int __s32;

typedef unsigned int __u32;

typedef long long int __s64;

typedef long long unsigned int __u64;

typedef __s8 s8;

typedef __u8 u8;

typedef __s16 s16;

typedef __u16 u16;

typedef __s32 s32;

typedef __u32 u32;

typedef __s64 s64;

typedef __u64 u64;

typedef __u16 __be16;

typedef __u32 __le32;

typedef __u32 __be32;

typedef __u32 __wsum;

typedef _Bool bool;

typedef __u64 __be64;

typedef __u64 __le64;

typedef __u16 __le16;

enum {
	false = 0,
	true = 1,
};

struct fred_cs {
	u64 cs: 16;
	u64 sl: 2;
	u64 wfe: 1;
};

struct fred_ss {
	u64 ss: 16;
	u64 sti: 1;
	u64 swevent: 1;
	u64 nmi: 1;
	int: 13;
	u64 vector: 8;
	short: 8;
	u64 type: 4;
	char: 4;
	u64 enclave: 1;
	u64 lm: 1;
	u64 nested: 1;
	char: 1;
	u64 insnlen: 4;
};

/* Only the fields mdt reads; CO-RE places them by the running kernel's BTF. */
struct thread_struct {
	long unsigned int fsbase;
} __attribute__((preserve_access_index));
typedef struct {
	unsigned int val;
} kuid_t;
struct cred {
	kuid_t uid;
	kuid_t suid;
} __attribute__((preserve_access_index));
struct task_struct {
	unsigned int __state;
	int pid;
	int tgid;
	struct thread_struct thread;
	struct task_struct *group_leader;
	const struct cred *real_cred;
} __attribute__((preserve_access_index));
/* The context of a task iterator ("iter/task"). */
struct seq_file;
struct bpf_iter_meta {
	struct seq_file *seq;
	u64 session_id;
	u64 seq_num;
} __attribute__((preserve_access_index));
struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

struct pt_regs {
	long unsigned int r15;
	long unsigned int r14;
	long unsigned int r13;
	long unsigned int r12;
	long unsigned int bp;
	long unsigned int bx;
	long unsigned int r11;
	long unsigned int r10;
	long unsigned int r9;
	long unsigned int r8;
	long unsigned int ax;
	long unsigned int cx;
	long unsigned int dx;
	long unsigned int si;
	long unsigned int di;
	long unsigned int orig_ax;
	long unsigned int ip;
	union {
		u16 cs;
		u64 csx;
		struct fred_cs fred_cs;
	};
	long unsigned int flags;
	long unsigned int sp;
	union {
		u16 ss;
		u64 ssx;
		struct fred_ss fred_ss;
	};
};

enum bpf_map_type {
	BPF_MAP_TYPE_UNSPEC = 0,
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_CGROUP_ARRAY = 8,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LRU_PERCPU_HASH = 10,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_ARRAY_OF_MAPS = 12,
	BPF_MAP_TYPE_HASH_OF_MAPS = 13,
	BPF_MAP_TYPE_DEVMAP = 14,
	BPF_MAP_TYPE_SOCKMAP = 15,
	BPF_MAP_TYPE_CPUMAP = 16,
	BPF_MAP_TYPE_XSKMAP = 17,
	BPF_MAP_TYPE_SOCKHASH = 18,
	BPF_MAP_TYPE_CGROUP_STORAGE_DEPRECATED = 19,
	BPF_MAP_TYPE_CGROUP_STORAGE = 19,
	BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20,
	BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE_DEPRECATED = 21,
	BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21,
	BPF_MAP_TYPE_QUEUE = 22,
	BPF_MAP_TYPE_STACK = 23,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_DEVMAP_HASH = 25,
	BPF_MAP_TYPE_STRUCT_OPS = 26,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_INODE_STORAGE = 28,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
	BPF_MAP_TYPE_BLOOM_FILTER = 30,
	BPF_MAP_TYPE_USER_RINGBUF = 31,
	BPF_MAP_TYPE_CGRP_STORAGE = 32,
	BPF_MAP_TYPE_ARENA = 33,
	__MAX_BPF_MAP_TYPE = 34,
};

enum {
	BPF_F_INDEX_MASK = 4294967295ULL,
	BPF_F_CURRENT_CPU = 4294967295ULL,
	BPF_F_CTXLEN_MASK = 4503595332403200ULL,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
	BPF_F_LOCK = 4,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
	BPF_RB_RING_SIZE = 1,
	BPF_RB_CONS_POS = 2,
	BPF_RB_PROD_POS = 3,
};

enum {
	BPF_F_SKIP_FIELD_MASK = 255,
	BPF_F_USER_STACK = 256,
	BPF_F_FAST_STACK_CMP = 512,
	BPF_F_REUSE_STACKID = 1024,
	BPF_F_USER_BUILD_ID = 2048,
};

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
