#!/usr/bin/env python3
"""rmem-vmm's VIRTIO shared memory region under a real guest: our test
back-end (rmem-shmem-test-backend) maps pieces with vhost-user SHMEM_MAP /
UNMAP, the L2 guest reads them, writes the read-write piece, sees a remap,
and then breaks the rules once per guest: a write to a read-only piece and
a read of an unmapped offset must each stop the guest (exit 5) with a report
naming the guest physical address. Invalid maps from the back-end must be
refused while rmem-vmm keeps going. VHE and protected (pKVM) mode, in
parallel; also prints the map/unmap latency figures and the memslot floor.
See images/l1/scenarios/vmm_shm.sh. TAP output.
"""

import sys

import tap
from tap import soc

MODES = ["vhe", "protected"]
TIMEOUT = 300
CASES = ["rowrite", "hole"]
REFUSED = "8/8"
PIECE_A, PIECE_B = "0xa11ce001", "0xb0b0b002"
VIOLATIONS = {
    "rowrite": "guest write to read-only piece 0x0+0x10000 of shared memory region 0 "
               "at 0x8000000000",
    "hole": "guest read of unmapped offset 0x300000 of shared memory region 0 "
            "at 0x8000300000",
}


def lower(values):
    return [v.lower() for v in values]


def shm_checks(result, mode):
    violations = dict(v.split(maxsplit=1) for v in result.values("RMEM-L1-SHM-VIOLATION")
                      if " " in v)
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
        ("no guest continued past a violation", not result.has("RMEM-L2-SHM-NOT-STOPPED"), []),
        ("each violation stops the guest with exit 5",
         result.values("RMEM-L1-VMM-EXIT") == ["5", "5"],
         [f"RMEM-L1-VMM-EXIT {result.values('RMEM-L1-VMM-EXIT')}"]),
    ]
    for case in CASES:
        got = violations.get(case, "")
        checks.append((f"{case}: reported with its guest physical address",
                       got.endswith(VIOLATIONS[case]),
                       [f"want ...{VIOLATIONS[case]}", f"got {got or 'nothing'}"]))
    checks.append(("latency benchmark ran", len(result.values("RMEM-BACKEND-BENCH")) == 2
                   and len(result.values("RMEM-BENCH")) >= 3, []))
    checks.append(("scenario succeeded", result.passed, [soc.verdict(result)]))
    return checks


def main():
    return tap.run(
        [(mode, {"scenario": "vmm_shm", "mode": mode, "timeout": TIMEOUT}) for mode in MODES],
        lambda result, kwargs: shm_checks(result, kwargs["mode"]),
        lambda result: [f"SoC run {result.seconds:.1f} s, guest runs "
                        f"{' / '.join(result.values('RMEM-L1-VMM-SECONDS'))} s",
                        *result.values("RMEM-BACKEND-BENCH"), *result.values("RMEM-BENCH")])


if __name__ == "__main__":
    sys.exit(main())
