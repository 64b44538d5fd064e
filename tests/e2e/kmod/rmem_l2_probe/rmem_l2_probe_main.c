// SPDX-License-Identifier: GPL-2.0
/*
 * TEST ONLY: rmem_l2_probe, run in the L2 guest of the test SoC. It maps
 * one page of guest physical memory (module parameter addr=, a read-write
 * page of the rmem shared memory window) as Normal write-back memory with
 * memremap(MEMREMAP_WB), and does there what Normal memory allows and
 * Device memory does not:
 *
 *   unaligned-load  an 8-byte load from an address that is not 8-aligned
 *   dc-zva          DC ZVA of one zeroing block
 *   ldxr-stxr       a load-exclusive / store-exclusive increment
 *
 * When stage 2 gives the page Device attributes, the combined memory type
 * is Device and, on hardware, the first two take an alignment fault and
 * the third may fault or never succeed. Each instruction has an exception
 * table entry (rmem_l2_probe_insn.S), so a fault becomes a result instead
 * of an oops. For each
 * probe it logs (dmesg; the L2 scenario turns them into console markers):
 *
 *   rmem_l2_probe: RESULT <probe> ok|fault|mismatch|unavailable <detail>
 *
 * and then "rmem_l2_probe: DONE <n> failed". Loading fails with -EIO if a
 * probe did not succeed; the module keeps nothing mapped either way.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <asm/sysreg.h>

#include "rmem_l2_probe.h"

static unsigned long addr;
module_param(addr, ulong, 0444);
MODULE_PARM_DESC(addr, "guest physical address of a read-write page to probe");

/* Where in the page each probe works: apart, and each suitably aligned. */
#define LOAD_OFFSET	0x100
#define ZVA_OFFSET	0x800	/* aligned for any zeroing block (<= 2 KiB) */
#define EXCL_OFFSET	0x080
#define EXCL_TRIES	1000

static void result(int *failed, const char *probe, const char *verdict,
		   const char *detail)
{
	if (strcmp(verdict, "ok"))
		(*failed)++;
	pr_info("RESULT %s %s %s\n", probe, verdict, detail);
}

static void probe_unaligned_load(u8 *page, int *failed)
{
	u64 want = 0, got;
	char detail[48];
	int i;

	for (i = 0; i < 16; i++)
		WRITE_ONCE(page[LOAD_OFFSET + i], 0x10 + i);
	for (i = 8; i >= 1; i--)
		want = want << 8 | (0x10 + i);
	if (rmem_probe_ldr(page + LOAD_OFFSET + 1, &got)) {
		result(failed, "unaligned-load", "fault", "-");
		return;
	}
	snprintf(detail, sizeof(detail), "0x%016llx", got);
	result(failed, "unaligned-load", got == want ? "ok" : "mismatch", detail);
}

static void probe_zva(u8 *page, int *failed)
{
	u64 dczid = read_sysreg(dczid_el0);
	unsigned int block = 4U << (dczid & 0xf);
	char detail[48];
	unsigned int i, nonzero = 0;

	if (dczid & BIT(4) || block > PAGE_SIZE - ZVA_OFFSET) {
		snprintf(detail, sizeof(detail), "DCZID_EL0=0x%llx", dczid);
		result(failed, "dc-zva", "unavailable", detail);
		return;
	}
	memset(page + ZVA_OFFSET, 0xa5, block);
	if (rmem_probe_dc_zva(page + ZVA_OFFSET)) {
		result(failed, "dc-zva", "fault", "-");
		return;
	}
	for (i = 0; i < block; i++)
		nonzero += READ_ONCE(page[ZVA_OFFSET + i]) != 0;
	snprintf(detail, sizeof(detail), "block=%u nonzero=%u", block, nonzero);
	result(failed, "dc-zva", nonzero ? "mismatch" : "ok", detail);
}

static void probe_exclusive(u8 *page, int *failed)
{
	u64 *word = (u64 *)(page + EXCL_OFFSET);
	char detail[48];
	u32 stored = 1;
	int tries;

	WRITE_ONCE(*word, 41);
	for (tries = 1; tries <= EXCL_TRIES; tries++) {
		if (rmem_probe_exclusive_inc(word, &stored)) {
			result(failed, "ldxr-stxr", "fault", "-");
			return;
		}
		if (!stored)
			break;
	}
	snprintf(detail, sizeof(detail), "tries=%d value=%llu",
		 stored ? EXCL_TRIES : tries, READ_ONCE(*word));
	result(failed, "ldxr-stxr",
	       !stored && READ_ONCE(*word) == 42 ? "ok" : "mismatch", detail);
}

static int __init rmem_l2_probe_init(void)
{
	int failed = 0;
	u8 *page;

	if (!addr || !PAGE_ALIGNED(addr)) {
		pr_err("addr=0x%lx: need a page-aligned guest physical address\n",
		       addr);
		return -EINVAL;
	}
	page = memremap(addr, PAGE_SIZE, MEMREMAP_WB);
	if (!page) {
		pr_err("memremap(0x%lx, MEMREMAP_WB) failed\n", addr);
		return -ENOMEM;
	}
	probe_unaligned_load(page, &failed);
	probe_zva(page, &failed);
	probe_exclusive(page, &failed);
	memunmap(page);
	pr_info("DONE %d failed\n", failed);
	return failed ? -EIO : 0;
}

static void __exit rmem_l2_probe_exit(void)
{
}

module_init(rmem_l2_probe_init);
module_exit(rmem_l2_probe_exit);

MODULE_DESCRIPTION("TEST ONLY: probes whether a guest page behaves as Normal memory");
MODULE_LICENSE("GPL");
