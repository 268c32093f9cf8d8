// SPDX-License-Identifier: GPL-2.0-only
/*
 * vringfuzz glue: the real drivers/virtio/virtio_ring.c as one shared library.
 *
 * Rules:
 * - This file #includes virtio_ring.c unmodified (extracted from the Debian
 *   linux-source package at build time) so that it can reach the static
 *   split-ring constructor and build a queue over the three areas the harness
 *   allocated (the plug-in contract's cfg.desc/avail/used), as
 *   vring_create_virtqueue_split does over its own allocation.
 * - Every exported vf_* entry point takes a struct vf_call and setjmp()s in
 *   it: a hook that returns that call's address (BUG, or a Python exception
 *   raised in a hook) lands back here and the call returns VF_ABORTED.
 *   Nothing else is global except the hook table, set once per process.
 * - kmalloc honours __GFP_ZERO and page-aligns (the stock shim does neither);
 *   a VF_GFP_GUEST allocation (indirect tables) comes from guest memory
 *   through the harness, because the device must be able to read it.
 * - DMA is identity-mapped (tools/virtio): descriptor addresses are this
 *   process's virtual addresses, so guest memory is real memory.
 */
#include <setjmp.h>
#include <linux/virtio.h>
#include <linux/virtio_ring.h>
#include <linux/slab.h>
#include <linux/dma-mapping.h>
#include <vf_hooks.h>

struct vf_hooks vf_hooks;

struct vf_call {
	jmp_buf jb;
};

#define VF_ABORTED (-1000)

static inline void vf_maybe_abort(uintptr_t call)
{
	if (call)
		longjmp(((struct vf_call *)call)->jb, 1);
}

void vf_barrier(int kind)
{
	/* The real fence first: the C code must stay correct on real hardware. */
	if (kind == VF_MB)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	else
		__asm__ __volatile__("" ::: "memory");
	if (vf_hooks.barrier)
		vf_maybe_abort((vf_hooks.barrier)(kind));
}

void vf_bug(int kind, const char *what, const char *file, int line)
{
	uintptr_t call = vf_hooks.bug ? vf_hooks.bug(kind, what, file, line) : 0;

	vf_maybe_abort(call);
	/* No API call to return to: the worker process is the last line. */
	fprintf(stderr, "vringfuzz: kernel BUG %s at %s:%d outside any call\n",
		what, file, line);
	abort();
}

int vf_warn(int cond, const char *what, const char *file, int line)
{
	if (cond && vf_hooks.bug)
		vf_maybe_abort(vf_hooks.bug(VF_WARN, what, file, line));
	return cond;
}

static void vf_report(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vf_report(int level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (vf_hooks.report)
		vf_maybe_abort(vf_hooks.report(level, msg));
}

/* BAD_RING() and friends print through dev_err: route them to the harness,
 * which turns "id %u out of range" / "id %u is not a head!" into the
 * DeviceViolation leaves. */
#undef dev_err
#undef dev_warn
#undef dev_warn_once
#define dev_err(dev, fmt, ...) vf_report(VF_ERR, fmt, ##__VA_ARGS__)
#define dev_warn(dev, fmt, ...) vf_report(VF_WARNING, fmt, ##__VA_ARGS__)
#define dev_warn_once(dev, fmt, ...) vf_report(VF_WARNING, fmt, ##__VA_ARGS__)

static void *vf_kmalloc(size_t size, unsigned int gfp)
{
	void *p;

	if (gfp & VF_GFP_GUEST) {
		/* Guest memory is zeroed by its allocator; 0 means "no room", and
		 * virtio_ring falls back to direct descriptors as on -ENOMEM. */
		p = vf_hooks.galloc ? (void *)vf_hooks.galloc(size) : NULL;
		return p;
	}
	if (posix_memalign(&p, getpagesize(), size ? size : 1))
		return NULL;
	if (gfp & __GFP_ZERO)
		memset(p, 0, size);
	return p;
}

static void *vf_kmalloc_array(size_t n, size_t size, unsigned int gfp)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return vf_kmalloc(bytes, gfp);
}

static void vf_kfree(const void *p)
{
	if (!p)
		return;
	if (vf_hooks.gfree && vf_hooks.gfree((uintptr_t)p))
		return;
	free((void *)p);
}

#define kmalloc(s, gfp) vf_kmalloc((s), (gfp))
#define kmalloc_array(n, s, gfp) vf_kmalloc_array((n), (s), (gfp))
#define kcalloc(n, s, gfp) vf_kmalloc_array((n), (s), (gfp) | __GFP_ZERO)
#define kzalloc(s, gfp) vf_kmalloc((s), (gfp) | __GFP_ZERO)
#define kfree(p) vf_kfree(p)
#define alloc_pages_exact(s, gfp) vf_kmalloc(PAGE_ALIGN(s), (gfp))
#define free_pages_exact(p, s) vf_kfree(p)

/* Missing from the tools/virtio shims (6.1: data_race; 6.12: MODULE_DESCRIPTION). */
#ifndef data_race
#define data_race(expr) (expr)
#endif
#ifndef MODULE_DESCRIPTION
#define MODULE_DESCRIPTION(desc)
#endif

#include "drivers/virtio/virtio_ring.c"

/* ------------------------------------------------------------------------ */

struct vf_queue {
	struct virtio_device vdev;
	struct virtqueue *vq;
};

static bool vf_notify(struct virtqueue *vq)
{
	if (vf_hooks.notify)
		vf_maybe_abort(vf_hooks.notify());
	return true;
}

/* The interrupt callback is driven by the harness, not through vring_interrupt;
 * it must be non-NULL or the ring starts with interrupts suppressed
 * (virtqueue_vring_init_split). */
static void vf_callback(struct virtqueue *vq)
{
}

void vf_set_hooks(const struct vf_hooks *hooks)
{
	vf_hooks = *hooks;
}

size_t vf_call_size(void)
{
	return sizeof(struct vf_call);
}

int vf_open(struct vf_call *c, struct vf_queue **out, unsigned int num,
	    unsigned long long features, void *desc, void *avail, void *used)
{
	struct vring_virtqueue_split split = {};
	struct vf_queue *q;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	if (setjmp(c->jb)) {
		free(q);
		return VF_ABORTED;
	}
	q->vdev.features = features;
	INIT_LIST_HEAD(&q->vdev.vqs);
	spin_lock_init(&q->vdev.vqs_list_lock);
	split.vring.num = num;
	split.vring.desc = desc;
	split.vring.avail = avail;
	split.vring.used = used;
	/* weak_barriers=true: virtio-pci on SMP, the virt_*() barriers. */
#if VF_KVER >= 612
	/* 6.12 also takes the DMA device: vdev->dev.parent, as
	 * vring_new_virtqueue() passes (NULL here; the DMA API is off in the
	 * tools shim: no ACCESS_PLATFORM, not Xen). */
	q->vq = __vring_new_virtqueue(0, &split, &q->vdev, true, false,
				      vf_notify, vf_callback, "vringfuzz",
				      q->vdev.dev.parent);
#else
	q->vq = __vring_new_virtqueue(0, &split, &q->vdev, true, false,
				      vf_notify, vf_callback, "vringfuzz");
#endif
	if (!q->vq) {
		free(q);
		return -ENOMEM;
	}
	*out = q;
	return 0;
}

int vf_close(struct vf_call *c, struct vf_queue *q)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	vring_del_virtqueue(q->vq);
	free(q);
	return 0;
}

/* addrs/lens: n_out device-readable entries, then n_in device-writable ones. */
int vf_add_sgs(struct vf_call *c, struct vf_queue *q, unsigned int n_out,
	       unsigned int n_in, const uint64_t *addrs, const uint32_t *lens,
	       uintptr_t data)
{
	unsigned int n = n_out + n_in, i;
	struct scatterlist *sg = calloc(n ? n : 1, sizeof(*sg));
	struct scatterlist **sgs = calloc(n ? n : 1, sizeof(*sgs));
	volatile int rc;

	if (!sg || !sgs) {
		free(sg);
		free(sgs);
		return -ENOMEM;
	}
	/* One single-entry scatterlist per element: each becomes a descriptor. */
	for (i = 0; i < n; i++) {
		sg_init_one(&sg[i], (void *)(uintptr_t)addrs[i], lens[i]);
		sgs[i] = &sg[i];
	}
	if (setjmp(c->jb))
		rc = VF_ABORTED;
	else
		rc = virtqueue_add_sgs(q->vq, sgs, n_out, n_in, (void *)data,
				       GFP_ATOMIC | VF_GFP_GUEST);
	free(sg);
	free(sgs);
	return rc;
}

#define VF_BOOL_CALL(name, expr)					\
int name(struct vf_call *c, struct vf_queue *q)				\
{									\
	if (setjmp(c->jb))						\
		return VF_ABORTED;					\
	return (expr) ? 1 : 0;						\
}

VF_BOOL_CALL(vf_kick_prepare, virtqueue_kick_prepare(q->vq))
VF_BOOL_CALL(vf_notify_device, virtqueue_notify(q->vq))
VF_BOOL_CALL(vf_kick, virtqueue_kick(q->vq))
VF_BOOL_CALL(vf_enable_cb, virtqueue_enable_cb(q->vq))
VF_BOOL_CALL(vf_enable_cb_delayed, virtqueue_enable_cb_delayed(q->vq))
VF_BOOL_CALL(vf_is_broken, virtqueue_is_broken(q->vq))

int vf_disable_cb(struct vf_call *c, struct vf_queue *q)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	virtqueue_disable_cb(q->vq);
	return 0;
}

/* Returns the opaque value in *opaque (unsigned int, as in the kernel). */
int vf_enable_cb_prepare(struct vf_call *c, struct vf_queue *q, unsigned int *opaque)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	*opaque = virtqueue_enable_cb_prepare(q->vq);
	return 0;
}

int vf_poll(struct vf_call *c, struct vf_queue *q, unsigned int opaque)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	return virtqueue_poll(q->vq, opaque) ? 1 : 0;
}

int vf_get_buf(struct vf_call *c, struct vf_queue *q, uintptr_t *data, unsigned int *len)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	*data = (uintptr_t)virtqueue_get_buf(q->vq, len);
	return 0;
}

int vf_detach_unused_buf(struct vf_call *c, struct vf_queue *q, uintptr_t *data)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	*data = (uintptr_t)virtqueue_detach_unused_buf(q->vq);
	return 0;
}

/* Plain reads of driver-private state for oracles: no hooks fire. */
unsigned int vf_num_free(struct vf_queue *q)
{
	return q->vq->num_free;
}

void vf_break(struct vf_queue *q)
{
	__virtqueue_break(q->vq);
}

/* The free list (desc_extra[].next from free_head), at most max entries. */
unsigned int vf_free_list(struct vf_queue *q, uint16_t *out, unsigned int max)
{
	struct vring_virtqueue *vq = to_vvq(q->vq);
	unsigned int n = vq->vq.num_free, i, k;

	if (vq->packed_ring)
		return 0;
	for (k = 0, i = vq->free_head; k < n && k < max; k++) {
		out[k] = i;
		i = vq->split.desc_extra[i].next;
	}
	return k;
}

/* Test seam: fire BUG_ON (what=0) or WARN_ON (what=1) inside an API call, so
 * the tests can check both paths without a broken kernel. */
int vf_selftest(struct vf_call *c, struct vf_queue *q, int what)
{
	if (setjmp(c->jb))
		return VF_ABORTED;
	if (what == 0)
		BUG_ON(q->vq->num_free != UINT_MAX);
	else
		WARN_ON(q->vq->num_free != UINT_MAX);
	return 0;
}
