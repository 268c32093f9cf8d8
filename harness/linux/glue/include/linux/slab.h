/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vringfuzz overlay of tools/virtio/linux/slab.h.  The stock shim defines
 * __GFP_ZERO as 0, so kmalloc(..., __GFP_ZERO) hands out garbage (a fresh
 * ring with a non-zero used idx).  Distinct bits let vf_kmalloc honour it.
 */
#ifndef VF_LINUX_SLAB_H
#define VF_LINUX_SLAB_H
#define GFP_KERNEL 0u
#define GFP_ATOMIC 0u
#define __GFP_NOWARN 0x200u
#define __GFP_ZERO 0x100u
#endif
