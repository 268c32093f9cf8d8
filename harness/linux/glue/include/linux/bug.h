/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vringfuzz overlay of tools/virtio/linux/bug.h: BUG_ON was assert() and BUG()
 * abort(), either of which kills a whole campaign.  Here they call the harness
 * (KernelBug) and abandon the API call in progress, as the kernel kills the
 * task that hit a BUG.
 */
#ifndef _LINUX_BUG_H
#define _LINUX_BUG_H
#include <asm/bug.h>
#include <vf_hooks.h>

#define BUG_ON(cond) do { if (__builtin_expect(!!(cond), 0)) \
	vf_bug(VF_BUG, "BUG_ON(" #cond ")", __FILE__, __LINE__); } while (0)
#define BUG() vf_bug(VF_BUG, "BUG()", __FILE__, __LINE__)
#endif
