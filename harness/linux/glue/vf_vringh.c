// SPDX-License-Identifier: GPL-2.0-only
/*
 * vringfuzz glue: the real drivers/vhost/vringh.c (host side of a split ring)
 * in the same shared library as virtio_ring.c (vf_glue.c).
 *
 * Rules:
 * - This file #includes vringh.c unmodified (extracted from the Debian
 *   linux-source package at build time) and drives its *userspace* flavour
 *   (vringh_init_user / vringh_getdesc_user / vringh_complete_user /
 *   vringh_need_notify_user / vringh_notify_{enable,disable}_user), as the
 *   kernel's tools/virtio/vringh_test.c does.  That flavour is the one that
 *   checks guest addresses: every descriptor and indirect-table address goes
 *   through range_check() and our getrange(), which accepts exactly the
 *   guest memory [lo, hi) of this queue (offset 0: guest memory is mapped at
 *   its own address, as for the driver).  A refused address is remembered
 *   in the queue (oob) so the harness can name the rule (BufferOutOfMemory).
 * - Ring areas are harness-allocated inside guest memory (checked in
 *   Python), so the uaccess accessors below do not re-check them: the stock
 *   shim's assert against the process-global __user_addr_min/max would be
 *   global state shared by every queue of the process.
 * - Every exported vfh_* entry point takes a struct vf_call (same layout as
 *   vf_glue.c) and setjmp()s in it: barriers (virtio_rmb/wmb/mb through the
 *   asm/barrier.h overlay -> vf_barrier), BUG_ON (linux/bug.h overlay) and
 *   vringh_bad() reports reach the harness through the shared hook table, and
 *   a hook may abandon the call (VF_ABORTED).
 * - vringh_bad() is rate limited in the kernel and silenced in the stock
 *   tools shim (__ratelimit of a zero state); here every message reaches the
 *   harness (overlay include/linux/ratelimit.h): a rate limit would be
 *   process-global state that a replay cannot reproduce.
 * - On an error for one chain, the head is given back (vringh_abandon_user),
 *   so the device position does not move past a bad chain (the contract of
 *   vring/split/device.py).
 */
#include <setjmp.h>
#include <stdarg.h>

/* Our own uaccess.h (the stock one asserts against process globals). */
#define UACCESS_H
#include <linux/compiler.h>
#include <linux/kernel.h>

#define put_user(x, ptr) ({ WRITE_ONCE(*(ptr), (x)); 0; })
#define get_user(x, ptr) ({ (x) = READ_ONCE(*(ptr)); 0; })

static inline int copy_from_user(void *to, const void volatile *from, unsigned long n)
{
	memcpy(to, (const void *)from, n);
	return 0;
}

static inline int copy_to_user(void volatile *to, const void *from, unsigned long n)
{
	memcpy((void *)to, from, n);
	return 0;
}

#include <linux/module.h>
#include <linux/vringh.h>
#include <linux/virtio_ring.h>
#include <linux/ratelimit.h>
#include <linux/slab.h>
#include <linux/export.h>
#include <vf_hooks.h>

#define VF_ABORTED (-1000)

struct vf_call {
	jmp_buf jb;
};

static inline void vfh_maybe_abort(uintptr_t call)
{
	if (call)
		longjmp(((struct vf_call *)call)->jb, 1);
}

/* vringh_bad(): printk(KERN_NOTICE "vringh:") then vprintk(fmt, ap). */
static void vfh_vreport(const char *fmt, va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (vf_hooks.report)
		vfh_maybe_abort(vf_hooks.report(VF_ERR, msg));
}

/* Every vringh_bad() message reaches the harness (no rate limit: see the
 * linux/ratelimit.h overlay); the "vringh:" prefix is dropped. */
#undef printk
#undef vprintk
#define printk(fmt, ...) ((void)0)
#define vprintk(fmt, ap) vfh_vreport((fmt), (ap))

/* The tools kernel.h allocators reference the test programs' globals
 * (__kmalloc_fake, __kfree_ignore_*); vringh only needs plain heap memory
 * for growing its iovec arrays (resize_iovec). */
static void *vfh_kmalloc_array(size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return malloc(bytes ? bytes : 1);
}

static void *vfh_krealloc_array(void *p, size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return realloc(p, bytes ? bytes : 1);
}

#undef kmalloc_array
#undef krealloc_array
#undef kfree
#define kmalloc_array(n, s, gfp) vfh_kmalloc_array((n), (s))
#define krealloc_array(p, n, s, gfp) vfh_krealloc_array((p), (n), (s))
#define kfree(p) free((void *)(p))

#ifndef MODULE_DESCRIPTION
#define MODULE_DESCRIPTION(desc)
#endif

#include "drivers/vhost/vringh.c"

/* ------------------------------------------------------------------------ */

#define VFH_IOV_INLINE 16

struct vfh_queue {
	struct vringh vrh;
	uintptr_t lo, hi;		/* guest memory [lo, hi) */
	struct vringh_iov riov, wiov;
	struct iovec rvec[VFH_IOV_INLINE], wvec[VFH_IOV_INLINE];
	int oob;			/* getrange refused an address this call */
	uint64_t oob_addr;
};

/* What one pop found; filled by vfh_getdesc (read by Python through ctypes). */
struct vfh_pop {
	uint32_t head;
	uint32_t n_read, n_write;	/* iovec counts (may exceed the arrays) */
	int32_t indirect;		/* the chain went through an indirect table */
	int32_t oob;			/* an address outside guest memory was refused */
	uint64_t oob_addr;
};

static bool vfh_getrange(struct vringh *vrh, u64 addr, struct vringh_range *r)
{
	struct vfh_queue *q = container_of(vrh, struct vfh_queue, vrh);

	if (addr < q->lo || addr >= q->hi) {
		q->oob = 1;
		q->oob_addr = addr;
		return false;
	}
	r->start = q->lo;
	r->end_incl = q->hi - 1;
	r->offset = 0;
	return true;
}

int vfh_open(struct vf_call *c, struct vfh_queue **out, unsigned int num,
	     unsigned long long features, void *desc, void *avail, void *used,
	     uintptr_t lo, uintptr_t hi)
{
	struct vfh_queue *q;
	int err;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	if (setjmp(c->jb)) {
		free(q);
		return VF_ABORTED;
	}
	q->lo = lo;
	q->hi = hi;
	/* weak_barriers=true: the virt_*() barriers, as vhost on SMP. */
	err = vringh_init_user(&q->vrh, features, num, true, desc, avail, used);
	if (err) {
		free(q);
		return err;
	}
	vringh_iov_init(&q->riov, q->rvec, VFH_IOV_INLINE);
	vringh_iov_init(&q->wiov, q->wvec, VFH_IOV_INLINE);
	*out = q;
	return 0;
}

static void vfh_iov_free(struct vringh_iov *iov)
{
	if (iov->max_num & VRINGH_IOV_ALLOCATED)
		free(iov->iov);
}

int vfh_close(struct vf_call *c, struct vfh_queue *q)
{
	vfh_iov_free(&q->riov);
	vfh_iov_free(&q->wiov);
	free(q);
	return 0;
}

/* Did the (already validated) chain at head go through an indirect table?
 * vringh does not say; a bounded walk of the direct part answers.  Not
 * instrumented in tsan builds: these are our reads, not vringh's. */
__attribute__((no_sanitize_thread))
static int vfh_chain_indirect(const struct vringh *vrh, unsigned int head)
{
	const struct vring_desc *d = vrh->vring.desc;
	unsigned int i = head, n, num = vrh->vring.num;

	for (n = 0; n < num && i < num; n++) {
		u16 flags = vringh16_to_cpu(vrh, d[i].flags);

		if (flags & VRING_DESC_F_INDIRECT)
			return 1;
		if (!(flags & VRING_DESC_F_NEXT))
			return 0;
		i = vringh16_to_cpu(vrh, d[i].next);
	}
	return 0;
}

static unsigned int vfh_copy_iov(const struct vringh_iov *iov, uint64_t *addrs,
				 uint32_t *lens, unsigned int max)
{
	unsigned int k;

	for (k = 0; k < iov->used && k < max; k++) {
		addrs[k] = (uintptr_t)iov->iov[k].iov_base;
		lens[k] = iov->iov[k].iov_len;
	}
	return iov->used;
}

/*
 * vringh_getdesc_user: 0 empty, 1 a chain (out filled, the first `max`
 * readable then writable iovecs copied to addrs/lens: readable at [0,
 * n_read), writable at [max, max + n_write)), or -errno (the head was given
 * back with vringh_abandon_user when vringh had taken it).
 */
int vfh_getdesc(struct vf_call *c, struct vfh_queue *q, struct vfh_pop *out,
		uint64_t *addrs, uint32_t *lens, unsigned int max)
{
	volatile int rc;
	u16 head;

	q->oob = 0;
	if (setjmp(c->jb))
		return VF_ABORTED;
	head = q->vrh.vring.num;
	rc = vringh_getdesc_user(&q->vrh, &q->riov, &q->wiov, vfh_getrange, &head);
	out->head = head;
	out->oob = q->oob;
	out->oob_addr = q->oob_addr;
	if (rc < 0) {
		/* *head stays num when the ring itself (the head) was bad; then
		 * vringh did not move. */
		if (head != q->vrh.vring.num)
			vringh_abandon_user(&q->vrh, 1);
		return rc;
	}
	if (rc == 0)
		return 0;
	out->n_read = vfh_copy_iov(&q->riov, addrs, lens, max);
	out->n_write = vfh_copy_iov(&q->wiov, addrs + max, lens + max, max);
	out->indirect = vfh_chain_indirect(&q->vrh, head);
	return 1;
}

/* The iovecs of the last chain again, into larger arrays (a long chain). */
void vfh_iovecs(struct vfh_queue *q, uint64_t *addrs, uint32_t *lens, unsigned int max)
{
	vfh_copy_iov(&q->riov, addrs, lens, max);
	vfh_copy_iov(&q->wiov, addrs + max, lens + max, max);
}

int vfh_complete(struct vf_call *c, struct vfh_queue *q, unsigned int head, unsigned int len)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	return vringh_complete_user(&q->vrh, head, len);
}

int vfh_need_notify(struct vf_call *c, struct vfh_queue *q)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	return vringh_need_notify_user(&q->vrh);
}

/* vringh's answer as is: 1 when the ring is still empty (may sleep). */
int vfh_notify_enable(struct vf_call *c, struct vfh_queue *q)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	return vringh_notify_enable_user(&q->vrh) ? 1 : 0;
}

int vfh_notify_disable(struct vf_call *c, struct vfh_queue *q)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	vringh_notify_disable_user(&q->vrh);
	return 0;
}

/* Device-private positions for oracles and tests: no hooks fire. */
void vfh_state(struct vfh_queue *q, uint32_t *out)
{
	out[0] = q->vrh.last_avail_idx;
	out[1] = q->vrh.last_used_idx;
	out[2] = q->vrh.completed;
}
