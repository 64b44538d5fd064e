/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TEST ONLY: the instructions rmem_l2_probe tries, each with an exception
 * table entry, so that a fault (an alignment fault on Device memory, say)
 * returns -EFAULT instead of oopsing. The kernel's fixup for these entries
 * does not care whether the faulting address is a user one.
 */
#include <linux/errno.h>
#include <linux/linkage.h>
#include <asm/asm-extable.h>

/* int rmem_probe_ldr(const void *src, u64 *val): one 8-byte LDR */
SYM_FUNC_START(rmem_probe_ldr)
1:	ldr	x2, [x0]
	str	x2, [x1]
	mov	w0, #0
	ret
9:	mov	w0, #-EFAULT
	ret
	_asm_extable_uaccess 1b, 9b
SYM_FUNC_END(rmem_probe_ldr)

/* int rmem_probe_dc_zva(void *dst): DC ZVA of the block holding dst */
SYM_FUNC_START(rmem_probe_dc_zva)
1:	dc	zva, x0
	mov	w0, #0
	ret
9:	mov	w0, #-EFAULT
	ret
	_asm_extable_uaccess 1b, 9b
SYM_FUNC_END(rmem_probe_dc_zva)

/*
 * int rmem_probe_exclusive_inc(u64 *word, u32 *status): LDXR, ADD 1, STXR;
 * *status is the STXR's status (0: it stored)
 */
SYM_FUNC_START(rmem_probe_exclusive_inc)
1:	ldxr	x2, [x0]
	add	x2, x2, #1
2:	stxr	w3, x2, [x0]
	str	w3, [x1]
	mov	w0, #0
	ret
9:	mov	w0, #-EFAULT
	ret
	_asm_extable_uaccess 1b, 9b
	_asm_extable_uaccess 2b, 9b
SYM_FUNC_END(rmem_probe_exclusive_inc)
