// SPDX-License-Identifier: GPL-2.0-only
/*
 * vringfuzz's own ThreadSanitizer entry points (no TSan runtime is linked).
 *
 * vf_glue.c compiled with -fsanitize=thread calls __tsan_readN/__tsan_writeN
 * before every load and store.  Here an access inside a watched range (the
 * guest memory of a Linux-driver run) calls the harness's access hook: a
 * scheduling point and a memory-model event per load/store of the real ring
 * code.  Accesses elsewhere (driver-private state, the stack) cost one range
 * check.  This file itself is compiled without instrumentation.
 */
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <vf_hooks.h>

#define VF_MAX_WATCH 64

/* Watched ranges [lo, hi): one per live Linux-driver memory.  Drivers are
 * unwatched when Python collects them, which may be late (reference cycles
 * of a finished run): when the table is full the oldest slot is reused, so
 * a new memory is always watched (a silently unwatched one would hide every
 * access of its run from the harness). */
static uintptr_t vf_watch_lo[VF_MAX_WATCH], vf_watch_hi[VF_MAX_WATCH];
static int vf_nwatch, vf_next_evict;

void vf_tsan_watch(uintptr_t lo, uintptr_t hi)
{
	int i = vf_nwatch;

	if (i < VF_MAX_WATCH)
		vf_nwatch++;
	else
		i = vf_next_evict++ % VF_MAX_WATCH;
	/* Newest first: the live memory is found at once. */
	vf_watch_lo[i] = vf_watch_lo[0];
	vf_watch_hi[i] = vf_watch_hi[0];
	vf_watch_lo[0] = lo;
	vf_watch_hi[0] = hi;
}

void vf_tsan_unwatch(uintptr_t lo)
{
	for (int i = 0; i < vf_nwatch; i++)
		if (vf_watch_lo[i] == lo) {
			vf_nwatch--;
			vf_watch_lo[i] = vf_watch_lo[vf_nwatch];
			vf_watch_hi[i] = vf_watch_hi[vf_nwatch];
			return;
		}
}

struct vf_call { jmp_buf jb; };

static inline void vf_access(const void *p, int size, int is_write)
{
	uintptr_t a = (uintptr_t)p;

	for (int i = 0; i < vf_nwatch; i++)
		if (a >= vf_watch_lo[i] && a < vf_watch_hi[i]) {
			uintptr_t call = vf_hooks.access ? vf_hooks.access(a, size, is_write) : 0;

			if (call)
				longjmp(((struct vf_call *)call)->jb, 1);
			return;
		}
}

#define VF_RW(n) \
	void __tsan_read##n(void *p) { vf_access(p, n, 0); } \
	void __tsan_write##n(void *p) { vf_access(p, n, 1); } \
	void __tsan_unaligned_read##n(void *p) { vf_access(p, n, 0); } \
	void __tsan_unaligned_write##n(void *p) { vf_access(p, n, 1); }
VF_RW(1) VF_RW(2) VF_RW(4) VF_RW(8) VF_RW(16)

void __tsan_read_range(void *p, unsigned long n) { vf_access(p, (int)n, 0); }
void __tsan_write_range(void *p, unsigned long n) { vf_access(p, (int)n, 1); }
void __tsan_func_entry(void *pc) { (void)pc; }
void __tsan_func_exit(void) { }
void __tsan_init(void) { }
void __tsan_atomic_thread_fence(int order) { __atomic_thread_fence(__ATOMIC_SEQ_CST); (void)order; }
void __tsan_vptr_update(void **p, void *v) { (void)p; (void)v; }
void __tsan_vptr_read(void **p) { (void)p; }
