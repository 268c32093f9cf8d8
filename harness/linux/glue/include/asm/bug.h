/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vringfuzz overlay of tools/include/asm/bug.h: WARN*() report to the harness
 * (KernelWarning) and evaluate to the condition, as in the kernel.  The
 * "once" variants report every time: "once" would be process-global state,
 * and a replay must not depend on what ran before it in the same process.
 */
#ifndef _TOOLS_ASM_BUG_H
#define _TOOLS_ASM_BUG_H
#include <linux/compiler.h>
#include <vf_hooks.h>

#define WARN(cond, format...) vf_warn(!!(cond), #cond, __FILE__, __LINE__)
#define WARN_ON(cond) vf_warn(!!(cond), #cond, __FILE__, __LINE__)
#define WARN_ON_ONCE(cond) vf_warn(!!(cond), #cond, __FILE__, __LINE__)
#define WARN_ONCE(cond, format...) vf_warn(!!(cond), #cond, __FILE__, __LINE__)
#endif
