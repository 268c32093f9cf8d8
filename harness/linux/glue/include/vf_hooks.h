/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vringfuzz hook table: how the kernel ring code calls back into the harness.
 *
 * Every hook returns 0 to let the C code go on, or the address of the
 * struct vf_call of the API call in progress to abandon it: the glue then
 * longjmp()s back to that call's wrapper (BUG, or a Python exception such as
 * a scheduler stopping the run).  The table is set once per process; which
 * run a hook belongs to is known on the Python side (the call in progress).
 */
#ifndef VF_HOOKS_H
#define VF_HOOKS_H
#include <stddef.h>
#include <stdint.h>

enum vf_barrier_kind { VF_MB = 0, VF_RMB = 1, VF_WMB = 2 };
enum vf_bug_kind { VF_BUG = 0, VF_WARN = 1 };
enum vf_report_level { VF_ERR = 0, VF_WARNING = 1 };

/* A kmalloc gfp bit of our own: allocate in guest memory (indirect tables,
 * which the device must be able to read). */
#define VF_GFP_GUEST 0x1000000u

struct vf_hooks {
	uintptr_t (*barrier)(int kind);
	uintptr_t (*bug)(int kind, const char *what, const char *file, int line);
	uintptr_t (*report)(int level, const char *msg);
	uintptr_t (*notify)(void);
	uintptr_t (*galloc)(size_t size);	/* guest address or 0 */
	int (*gfree)(uintptr_t addr);		/* 1 when addr was guest memory */
	/* -fsanitize=thread builds only: a load/store inside a watched range. */
	uintptr_t (*access)(uintptr_t addr, int size, int is_write);
};

extern struct vf_hooks vf_hooks;

void vf_barrier(int kind);
void vf_bug(int kind, const char *what, const char *file, int line)
	__attribute__((noreturn));
int vf_warn(int cond, const char *what, const char *file, int line);
#endif
