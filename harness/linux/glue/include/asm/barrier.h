/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vringfuzz overlay of tools/virtio/asm/barrier.h.
 *
 * Every barrier the ring code can reach calls vf_barrier(): it is the real
 * fence plus the harness hook (a scheduling point and a memory-model event,
 * GuestMemory.mb/rmb/wmb).  The stock shim makes mb()/dma_rmb()/dma_wmb()
 * abort(); strong barriers are legal virtio (weak_barriers=false), so here
 * they are the same hooks.  virt_store_mb is "store, then full barrier"
 * (include/linux/virtio_ring.h virtio_store_mb).
 */
#ifndef VF_ASM_BARRIER_H
#define VF_ASM_BARRIER_H
#include <vf_hooks.h>

#define barrier() __asm__ __volatile__("" ::: "memory")
#define virt_mb() vf_barrier(VF_MB)
#define virt_rmb() vf_barrier(VF_RMB)
#define virt_wmb() vf_barrier(VF_WMB)
#define virt_store_mb(var, value) do { WRITE_ONCE(var, value); vf_barrier(VF_MB); } while (0)
#define mb() vf_barrier(VF_MB)
#define rmb() vf_barrier(VF_RMB)
#define wmb() vf_barrier(VF_WMB)
#define dma_rmb() vf_barrier(VF_RMB)
#define dma_wmb() vf_barrier(VF_WMB)
#define smp_mb() vf_barrier(VF_MB)
#define smp_rmb() vf_barrier(VF_RMB)
#define smp_wmb() vf_barrier(VF_WMB)
#endif
