/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vringfuzz overlay of tools/virtio/linux/ratelimit.h, for vringh.c
 * (vf_vringh.c).  The stock shim's state starts at 0 and __ratelimit() reads
 * it, so vringh_bad() never prints and the harness could not tell one
 * rejected chain from another.  Here every message goes through: a rate
 * limit would be process-global state that a replay cannot reproduce (the
 * same reason WARN_ONCE reports every time, asm/bug.h).
 */
#ifndef VF_LINUX_RATELIMIT_H
#define VF_LINUX_RATELIMIT_H
#define DEFAULT_RATELIMIT_INTERVAL 0
#define DEFAULT_RATELIMIT_BURST 0
#define DEFINE_RATELIMIT_STATE(name, interval_init, burst_init) int name __attribute__((unused)) = 0
#define __ratelimit(state) ((void)(state), 1)
#endif
