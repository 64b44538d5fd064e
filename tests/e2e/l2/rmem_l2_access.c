/*
 * TEST ONLY: rmem-l2-access, run in the L2 guest of the test SoC (static
 * aarch64, built by images/build, /bin in l2.cpio). It makes one access to
 * guest physical memory through /dev/mem, with an instruction chosen to
 * give the hypervisor a decodable exit or not:
 *
 *   ldr32 PHYS          one 32-bit load (LDR: ESR_EL2.ISV set, KVM_EXIT_MMIO)
 *   str32 PHYS VALUE    one 32-bit store (STR: ISV set)
 *   ldp64 PHYS          a pair of 64-bit loads (LDP: ISV clear, KVM_EXIT_ARM_NISV)
 *   stp64 PHYS VALUE    VALUE stored twice as a 64-bit pair (STP: ISV clear)
 *
 * and prints one line saying what happened:
 *
 *   ok [<value> [<value>]]     the access completed (a load: what it read); exit 0
 *   sigbus code=<si_code> addr=exact|<si_addr> pc=exact|<pc> regs=untouched|<x3>,<x4>|- esr=<esr>
 *                              it took SIGBUS (exit 3): si_addr compared with the
 *                              address accessed, the PC with the access's own
 *                              instruction, a load's destination registers
 *                              with the value they held before it ("-" for a
 *                              store), and the ESR the kernel reports in the
 *                              signal frame (esr_context; "none" if absent)
 *   signal <n>                 another signal (exit 4)
 *
 * With --after WORD (a guest physical address) it first waits, up to 90 s,
 * until the 32-bit word there reads 1 (a mailbox the other side sets;
 * "timeout --after <WORD>" and exit 5 if it never does), then, with
 * --signal WORD2, writes 1 to the word at WORD2 and waits for that store to
 * complete (DSB SY), and makes the access at once. Its line then ends in
 * " took_ms=<n>": how long the access instruction took, from just before it
 * to its completion or signal (a stage-2 fault the hypervisor holds shows
 * here).
 *
 * rmem-vmm answers an access to shared memory the guest holds no grant for
 * with a synchronous external data abort; Linux turns one taken from user
 * space into SIGBUS (BUS_OBJERR). The checks above show the access was not
 * performed and the guest resumed exactly at it.
 */
#define _GNU_SOURCE
#include <asm/sigcontext.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define SENTINEL 0x5e5e5e5e5e5e5e5eULL

/*
 * Each access is one instruction at a global label, so the signal handler can
 * compare the PC. Loads go to x3 (and x4), preset to the sentinel in x1; their
 * results are stored through x2.
 */
void rmem_ldr32(volatile void *addr, uint64_t sentinel, uint64_t *out);
void rmem_str32(volatile void *addr, uint64_t value);
void rmem_ldp64(volatile void *addr, uint64_t sentinel, uint64_t *out);
void rmem_stp64(volatile void *addr, uint64_t value);
extern const char rmem_ldr32_insn[], rmem_str32_insn[], rmem_ldp64_insn[], rmem_stp64_insn[];

__asm__(".text\n"
	".global rmem_ldr32, rmem_ldr32_insn\n"
	"rmem_ldr32:\n"
	"	mov	x3, x1\n"
	"rmem_ldr32_insn:\n"
	"	ldr	w3, [x0]\n"
	"	str	x3, [x2]\n"
	"	ret\n"
	".global rmem_str32, rmem_str32_insn\n"
	"rmem_str32:\n"
	"rmem_str32_insn:\n"
	"	str	w1, [x0]\n"
	"	ret\n"
	".global rmem_ldp64, rmem_ldp64_insn\n"
	"rmem_ldp64:\n"
	"	mov	x3, x1\n"
	"	mov	x4, x1\n"
	"rmem_ldp64_insn:\n"
	"	ldp	x3, x4, [x0]\n"
	"	stp	x3, x4, [x2]\n"
	"	ret\n"
	".global rmem_stp64, rmem_stp64_insn\n"
	"rmem_stp64:\n"
	"rmem_stp64_insn:\n"
	"	stp	x1, x1, [x0]\n"
	"	ret\n");

static sigjmp_buf back;
static volatile sig_atomic_t got_signal;
static siginfo_t got_info;
static uint64_t got_pc, got_x3, got_x4, got_esr;
static int got_esr_valid;

static void on_signal(int sig, siginfo_t *info, void *context)
{
	const ucontext_t *uc = context;
	const struct _aarch64_ctx *rec = (const void *)uc->uc_mcontext.__reserved;

	got_signal = sig;
	got_info = *info;
	got_pc = uc->uc_mcontext.pc;
	got_x3 = uc->uc_mcontext.regs[3];
	got_x4 = uc->uc_mcontext.regs[4];
	/* The records in __reserved end with a zero magic. */
	while (rec->magic != 0 && rec->size != 0) {
		if (rec->magic == ESR_MAGIC) {
			got_esr = ((const struct esr_context *)rec)->esr;
			got_esr_valid = 1;
		}
		rec = (const void *)((const char *)rec + rec->size);
	}
	siglongjmp(back, 1);
}

static int usage(void)
{
	fprintf(stderr, "usage: rmem-l2-access ldr32|ldp64 PHYS | str32|stp64 PHYS VALUE\n"
			"                      [--after WORD [--signal WORD2]]\n"
			"TEST ONLY: one access to guest physical memory via /dev/mem\n");
	return 2;
}

/* What main() needs after a siglongjmp: file scope, so not clobbered. */
static const char *op, *insn;
static uint64_t value, out[2];
static int is_load, has_after;
static volatile void *at;
static struct timespec t0;

/* Maps the page of /dev/mem that holds guest physical `phys`; NULL on failure. */
static volatile uint8_t *map_phys(int fd, uint64_t phys, long page)
{
	uint8_t *map = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			    (off_t)(phys & ~(uint64_t)(page - 1)));

	if (map == MAP_FAILED) {
		perror("rmem-l2-access: mmap of /dev/mem");
		return NULL;
	}
	return map + (phys & (page - 1));
}

static double seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* The " took_ms=<n>" of --after, from t0 to now ("" without --after). */
static void print_took(int timed)
{
	struct timespec t;

	if (!timed)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t);
	printf(" took_ms=%lld", (long long)((t.tv_sec - t0.tv_sec) * 1000 +
					     (t.tv_nsec - t0.tv_nsec) / 1000000));
}

int main(int argc, char **argv)
{
	uint64_t phys, after_phys = 0, signal_phys = 0;
	int fd, nargs, has_signal = 0;
	long page;
	volatile uint32_t *after = NULL, *signal_word = NULL;
	struct sigaction sa;
	double deadline;

	if (argc < 3)
		return usage();
	op = argv[1];
	phys = strtoull(argv[2], NULL, 0);
	is_load = !strcmp(op, "ldr32") || !strcmp(op, "ldp64");
	if (!is_load && strcmp(op, "str32") && strcmp(op, "stp64"))
		return usage();
	nargs = is_load ? 3 : 4;
	if (argc < nargs)
		return usage();
	if (!is_load)
		value = strtoull(argv[3], NULL, 0);
	for (int i = nargs; i < argc; i += 2) {
		if (i + 1 >= argc)
			return usage();
		if (!strcmp(argv[i], "--after")) {
			after_phys = strtoull(argv[i + 1], NULL, 0);
			has_after = 1;
		} else if (!strcmp(argv[i], "--signal")) {
			signal_phys = strtoull(argv[i + 1], NULL, 0);
			has_signal = 1;
		} else {
			return usage();
		}
	}
	if (has_signal && !has_after)
		return usage();

	page = sysconf(_SC_PAGESIZE);
	fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) {
		perror("rmem-l2-access: /dev/mem");
		return 1;
	}
	at = map_phys(fd, phys, page);
	if (!at)
		return 1;
	if (has_after && !(after = (volatile uint32_t *)map_phys(fd, after_phys, page)))
		return 1;
	if (has_signal &&
	    !(signal_word = (volatile uint32_t *)map_phys(fd, signal_phys, page)))
		return 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);

	if (!strcmp(op, "ldr32"))
		insn = rmem_ldr32_insn;
	else if (!strcmp(op, "str32"))
		insn = rmem_str32_insn;
	else if (!strcmp(op, "ldp64"))
		insn = rmem_ldp64_insn;
	else
		insn = rmem_stp64_insn;

	if (has_after) {
		deadline = seconds() + 90;
		while (*after != 1) {
			if (seconds() > deadline) {
				printf("timeout --after 0x%" PRIx64 "\n", after_phys);
				return 5;
			}
			usleep(1000);
		}
		if (has_signal) {
			*signal_word = 1;
			__asm__ volatile("dsb sy" ::: "memory");
		}
	}

	if (sigsetjmp(back, 1) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (!strcmp(op, "ldr32"))
			rmem_ldr32(at, SENTINEL, out);
		else if (!strcmp(op, "str32"))
			rmem_str32(at, value);
		else if (!strcmp(op, "ldp64"))
			rmem_ldp64(at, SENTINEL, out);
		else
			rmem_stp64(at, value);
		if (!strcmp(op, "ldr32"))
			printf("ok 0x%08" PRIx64, out[0]);
		else if (!strcmp(op, "ldp64"))
			printf("ok 0x%016" PRIx64 " 0x%016" PRIx64, out[0], out[1]);
		else
			printf("ok");
		print_took(has_after);
		printf("\n");
		return 0;
	}

	if (got_signal != SIGBUS) {
		printf("signal %d", (int)got_signal);
		print_took(has_after);
		printf("\n");
		return 4;
	}
	printf("sigbus code=%d", got_info.si_code);
	if (got_info.si_addr == (void *)at)
		printf(" addr=exact");
	else
		printf(" addr=%p", got_info.si_addr);
	if (got_pc == (uint64_t)(uintptr_t)insn)
		printf(" pc=exact");
	else
		printf(" pc=0x%" PRIx64 "(insn 0x%" PRIx64 ")", got_pc, (uint64_t)(uintptr_t)insn);
	if (!is_load)
		printf(" regs=-");
	else if (got_x3 == SENTINEL && (!strcmp(op, "ldr32") || got_x4 == SENTINEL))
		printf(" regs=untouched");
	else
		printf(" regs=0x%" PRIx64 ",0x%" PRIx64, got_x3, got_x4);
	if (got_esr_valid)
		printf(" esr=0x%" PRIx64, got_esr);
	else
		printf(" esr=none");
	print_took(has_after);
	printf("\n");
	return 3;
}
