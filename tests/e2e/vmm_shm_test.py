#!/usr/bin/env python3
"""rmem-vmm's VIRTIO shared memory region under a real guest: our test
back-end (rmem-shmem-test-backend) maps pieces with vhost-user SHMEM_MAP /
UNMAP, the L2 guest reads them, writes the read-write piece, sees a remap.
Invalid maps from the back-end must be refused while rmem-vmm keeps going.

Then the guest breaks the rules. Under the default policy (guest "abort")
each forbidden access -- a write to a read-only piece and a read of an
unmapped offset, each once with an instruction KVM decodes (STR/LDR,
KVM_EXIT_MMIO) and once with one it cannot (STP/LDP, KVM_EXIT_ARM_NISV) --
must give the guest a synchronous external data abort (and so must an LDP
where there is nothing at all, which is no violation): the guest's process
gets SIGBUS (BUS_OBJERR) at the access's own address and instruction, with
ESR_EL1 saying "data abort, external", a load's registers untouched; the
guest goes on, finds the read-only piece unchanged, reads the offset once
the back-end mapped it, and powers off; rmem-vmm reports each violation with
its guest physical address, counts them and exits 5. Under --on-violation
stop (guest "stop") the first write stops the guest (exit 5). L1's kernel
must log no WARNING meanwhile (a KVM that completed the aborted MMIO would).
VHE and protected (pKVM) mode, in parallel; also prints the map/unmap
latency figures and the memslot floor. See images/l1/scenarios/vmm_shm.sh.
TAP output.
"""

import sys

import tap
from l2_access import esr_is_external_data_abort, sigbus_fields
from tap import soc

MODES = ["vhe", "protected"]
TIMEOUT = 300
CASES = ["abort", "stop"]
REFUSED = "8/8"
PIECE_A, PIECE_B = "0xa11ce001", "0xb0b0b002"
REGION = "of shared memory region 0 at"
# The abort guest's forbidden accesses: (name, is a load, rmem-vmm's report).
ACCESSES = [
    ("rowrite", False, f"guest write to read-only piece 0x0+0x10000 {REGION} 0x8000000000"),
    ("hole", True, f"guest read of unmapped offset 0x300000 {REGION} 0x8000300000"),
    ("rowrite-stp", False, f"guest write to read-only piece 0x0+0x10000 {REGION} 0x8000000010"),
    ("hole-ldp", True, f"guest read of unmapped offset 0x300010 {REGION} 0x8000300010"),
]
ABORTED = ": external abort injected"
# An LDP where there is neither a device nor a region: no violation, but
# nothing can emulate it either, so it is aborted the same way.
UNDECODED = ("read at 0xc000000 that KVM could not decode (no instruction syndrome: "
             "LDP/STP, SIMD, ...)" + ABORTED)
STOPPED = ": stopping the guest (--on-violation stop)"
BUS_OBJERR = "3"


def lower(values):
    return [v.lower() for v in values]






def by_case(result, marker):
    """{case: [rest, ...]} of "<marker> <case> <rest>" lines."""
    out = {}
    for value in result.values(marker):
        case, _, rest = value.partition(" ")
        out.setdefault(case, []).append(rest)
    return out


def shm_checks(result, mode):
    aborts = {k: v[0] for k, v in by_case(result, "RMEM-L2-SHM-ABORT").items()}
    after = {k: v[0] for k, v in by_case(result, "RMEM-L2-SHM-AFTER").items()}
    reports = by_case(result, "RMEM-L1-SHM-VIOLATION")
    summary = {k: v[0] for k, v in by_case(result, "RMEM-L1-SHM-VIOLATIONS").items()}
    stopped = {k: v[0] for k, v in by_case(result, "RMEM-L1-SHM-STOPPED").items()}
    exits = result.values("RMEM-L1-VMM-EXIT")
    checks = [
        ("KVM mode", result.value("RMEM-L1-KVMMODE") == mode,
         [f"RMEM-L1-KVMMODE {result.value('RMEM-L1-KVMMODE')}"]),
        ("both guests ran", result.values("RMEM-L1-SHM-CASE") == CASES,
         [f"cases {result.values('RMEM-L1-SHM-CASE')}"]),
        ("invalid maps and unmaps are refused", result.values("RMEM-BACKEND-REFUSED") ==
         [REFUSED] * 2, [f"RMEM-BACKEND-REFUSED {result.values('RMEM-BACKEND-REFUSED')}"]),
        ("guest reads the read-only piece", lower(result.values("RMEM-L2-SHM-READ")) ==
         [PIECE_A] * 2, [f"RMEM-L2-SHM-READ {result.values('RMEM-L2-SHM-READ')}"]),
        ("guest's write to the read-write piece reaches the back-end",
         result.values("RMEM-BACKEND-GUEST-WROTE") == ["0xfeedf00d"] * 2,
         [f"RMEM-BACKEND-GUEST-WROTE {result.values('RMEM-BACKEND-GUEST-WROTE')}"]),
        ("guest sees the remapped piece", lower(result.values("RMEM-L2-SHM-REMAP")) ==
         [PIECE_B] * 2, [f"RMEM-L2-SHM-REMAP {result.values('RMEM-L2-SHM-REMAP')}"]),
        ("the back-end acknowledged every mailbox request", not result.has("RMEM-L2-SHM-NO-ACK"),
         [f"RMEM-L2-SHM-NO-ACK {result.values('RMEM-L2-SHM-NO-ACK')}"]),
    ]

    # The abort guest: every forbidden access is an external abort, one by one.
    for name, is_load, report in ACCESSES:
        line = aborts.get(name)
        fields = sigbus_fields(line)
        checks.append((f"abort guest, {name}: SIGBUS (BUS_OBJERR) at the access's own "
                       "address and instruction",
                       fields.get("code") == BUS_OBJERR and fields.get("addr") == "exact"
                       and fields.get("pc") == "exact",
                       [f"RMEM-L2-SHM-ABORT {name} {line or 'missing'}"]))
        checks.append((f"abort guest, {name}: the guest's ESR says synchronous external "
                       "data abort",
                       esr_is_external_data_abort(fields.get("esr")),
                       [f"esr {fields.get('esr', 'missing')}"]))
        if is_load:
            checks.append((f"abort guest, {name}: the load wrote no register",
                           fields.get("regs") == "untouched",
                           [f"regs {fields.get('regs', 'missing')}"]))
        got = reports.get("abort", [])
        checks.append((f"abort guest, {name}: rmem-vmm reported it with its guest physical "
                       "address, external abort injected",
                       any(r.endswith(report + ABORTED) for r in got),
                       [f"want ...{report}{ABORTED}", *[f"got {r}" for r in got]]))
    mmio = sigbus_fields(aborts.get("mmio-ldp"))
    undecoded = by_case(result, "RMEM-L1-SHM-UNDECODED").get("abort", [])
    checks += [
        ("abort guest, mmio-ldp (no device, no region): SIGBUS at the access, registers "
         "untouched",
         mmio.get("code") == BUS_OBJERR and mmio.get("addr") == "exact"
         and mmio.get("pc") == "exact" and mmio.get("regs") == "untouched"
         and esr_is_external_data_abort(mmio.get("esr")),
         [f"RMEM-L2-SHM-ABORT mmio-ldp {aborts.get('mmio-ldp', 'missing')}"]),
        ("abort guest, mmio-ldp: rmem-vmm reported it as undecodable, not as a violation",
         undecoded == [UNDECODED],
         [f"want {UNDECODED}", *[f"got {u}" for u in undecoded]]),
        ("abort guest: a write to the read-only piece left it unchanged (STR)",
         after.get("rowrite", "").lower() == PIECE_B,
         [f"RMEM-L2-SHM-AFTER rowrite {after.get('rowrite', 'missing')}"]),
        ("abort guest: a write to the read-only piece left it unchanged (STP)",
         after.get("rowrite-stp", "").lower() == f"ok 0x{PIECE_B[2:] * 2} 0x{PIECE_B[2:] * 2}",
         [f"RMEM-L2-SHM-AFTER rowrite-stp {after.get('rowrite-stp', 'missing')}"]),
        ("abort guest: the unmapped offset reads the piece the back-end mapped there later",
         (result.value("RMEM-L2-SHM-LATE") or "").lower() == PIECE_A
         and result.has("RMEM-BACKEND-LATE-MAPPED"),
         [f"RMEM-L2-SHM-LATE {result.value('RMEM-L2-SHM-LATE')}"]),
        ("abort guest: exactly its four violations were reported and counted",
         len(reports.get("abort", [])) == len(ACCESSES)
         and summary.get("abort") == f"{len(ACCESSES)} ({len(ACCESSES)} logged)",
         [f"reports {len(reports.get('abort', []))}, "
          f"RMEM-L1-SHM-VIOLATIONS abort {summary.get('abort', 'missing')}"]),
        ("abort guest: powered off normally, rmem-vmm exit 5 (violations recorded)",
         result.values("RMEM-L2-DONE") == ["rc=0"] and exits[:1] == ["5"]
         and stopped.get("abort") == "no",
         [f"RMEM-L2-DONE {result.values('RMEM-L2-DONE')}", f"RMEM-L1-VMM-EXIT {exits}",
          f"RMEM-L1-SHM-STOPPED abort {stopped.get('abort', 'missing')}"]),
    ]

    # The stop guest: fail-stop at the first violation.
    stop_reports = reports.get("stop", [])
    checks += [
        ("stop guest: stopped at its write to the read-only piece, exit 5",
         result.has("RMEM-L2-SHM-TRY") and not result.has("RMEM-L2-SHM-NOT-STOPPED")
         and exits[1:] == ["5"] and stopped.get("stop") == "stopped: isolation violation",
         [f"RMEM-L1-VMM-EXIT {exits}",
          f"RMEM-L1-SHM-STOPPED stop {stopped.get('stop', 'missing')}"]),
        ("stop guest: reported with its guest physical address, stopping the guest",
         len(stop_reports) == 1 and stop_reports[0].endswith(ACCESSES[0][2] + STOPPED)
         and summary.get("stop") == "1 (1 logged)",
         [f"want ...{ACCESSES[0][2]}{STOPPED}", *[f"got {r}" for r in stop_reports],
          f"RMEM-L1-SHM-VIOLATIONS stop {summary.get('stop', 'missing')}"]),
        tap.kernel_warnings_check(result),
        ("latency benchmark ran", len(result.values("RMEM-BACKEND-BENCH")) == 2
         and len(result.values("RMEM-BENCH")) >= 3, []),
        ("scenario succeeded", result.passed, [soc.verdict(result)]),
    ]
    return checks


def main():
    return tap.run(
        [(mode, {"scenario": "vmm_shm", "mode": mode, "timeout": TIMEOUT}) for mode in MODES],
        lambda result, kwargs: shm_checks(result, kwargs["mode"]),
        lambda result: [f"SoC run {result.seconds:.1f} s, guest runs "
                        f"{' / '.join(result.values('RMEM-L1-VMM-SECONDS'))} s",
                        *[f"guest saw: {v}" for v in result.values("RMEM-L2-SHM-ABORT")],
                        *result.values("RMEM-BACKEND-BENCH"), *result.values("RMEM-BENCH")])


if __name__ == "__main__":
    sys.exit(main())
