/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One memory access that may fault, for the guest programs that show what
 * rmem refuses (rmemtool, rmem-demo): fault_probe() does a single load (or a
 * store of *@value) of 1, 2, 4 or 8 bytes at @p -- one LDR/STR of that
 * width -- with SIGBUS and SIGSEGV caught, and returns 0 if it completed,
 * else the signal. An access the hypervisor refuses comes back as SIGBUS
 * (an external abort from rmem-vmm); one the guest's own page tables refuse
 * (a read-only mapping) as SIGSEGV. The handlers in place before are put
 * back. Not thread-safe: one probe at a time per process.
 */
#ifndef RMEM_GUEST_FAULT_PROBE_H
#define RMEM_GUEST_FAULT_PROBE_H

#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static sigjmp_buf fault_probe_jmp;
static volatile sig_atomic_t fault_probe_sig;

static void fault_probe_caught(int sig)
{
	fault_probe_sig = sig;
	siglongjmp(fault_probe_jmp, 1);
}

#define FAULT_PROBE_ACCESS(type, p, write, value)                           \
	do {                                                                \
		type v_;                                                    \
		if (write) {                                                \
			memcpy(&v_, (value), sizeof(v_));                   \
			*(volatile type *)(p) = v_;                         \
		} else {                                                    \
			v_ = *(volatile type *)(p);                         \
			memcpy((value), &v_, sizeof(v_));                   \
		}                                                           \
	} while (0)

/* @width: 1, 2, 4 or 8 (anything else: -1, nothing accessed). */
static inline int fault_probe(volatile void *p, size_t width, bool write, void *value)
{
	struct sigaction sa = { .sa_handler = fault_probe_caught }, old_bus, old_segv;

	if (width != 1 && width != 2 && width != 4 && width != 8)
		return -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	fault_probe_sig = 0;
	if (sigsetjmp(fault_probe_jmp, 1) == 0) {
		switch (width) {
		case 1: FAULT_PROBE_ACCESS(uint8_t, p, write, value); break;
		case 2: FAULT_PROBE_ACCESS(uint16_t, p, write, value); break;
		case 4: FAULT_PROBE_ACCESS(uint32_t, p, write, value); break;
		default: FAULT_PROBE_ACCESS(uint64_t, p, write, value); break;
		}
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return fault_probe_sig;
}

#undef FAULT_PROBE_ACCESS

#endif /* RMEM_GUEST_FAULT_PROBE_H */
