/* SPDX-License-Identifier: GPL-2.0 */
/* TEST ONLY: rmem_l2_probe's instructions (rmem_l2_probe_insn.S). */
#ifndef RMEM_L2_PROBE_H
#define RMEM_L2_PROBE_H

#include <linux/types.h>

/* Each returns 0, or -EFAULT if the instruction faulted. */
int rmem_probe_ldr(const void *src, u64 *val);
int rmem_probe_dc_zva(void *dst);
int rmem_probe_exclusive_inc(u64 *word, u32 *status);

#endif /* RMEM_L2_PROBE_H */
