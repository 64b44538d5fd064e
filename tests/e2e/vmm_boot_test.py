#!/usr/bin/env python3
"""rmem-vmm boots a real Linux guest (L2) under real KVM inside the test SoC
(L1), in VHE and in protected (pKVM) mode, two SoCs in parallel; then each
of its ways of ending is checked (timeout 124, SIGTERM 143, a bad kernel 1,
a usage error 2). The guest also loads and unloads the guest driver
(virtio_rmem.ko, no rmem device present) and runs rmemtool (images/l2/
scenarios/boot.sh). See images/l1/scenarios/vmm_boot.sh. TAP output.
"""

import sys

import tap
from tap import soc

MODES = ["vhe", "protected"]
TIMEOUT = 240
L2_CPUS = "2"
# 256 MiB of guest RAM less what the kernel keeps: MemTotal in kB.
L2_MEMKB_RANGE = (200_000, 262_144)
EXIT_CHECKS = {"timeout": "124", "sigterm": "143", "bad-kernel": "1", "usage": "2"}
RMEMMOD_OK = "load=ok driver=registered unload=ok gone=yes warnings=0"
RMEMTOOL_NO_DEVICE = "command=info want=ENOENT got=ENOENT verdict=ok"


def boot_checks(result, mode):
    memkb = int(result.value("RMEM-L2-MEMKB") or 0)
    exits = {v.split()[0]: v.split()[1:] for v in result.values("RMEM-L1-CHECK")}
    checks = [
        ("KVM mode", result.value("RMEM-L1-KVMMODE") == mode,
         [f"RMEM-L1-KVMMODE {result.value('RMEM-L1-KVMMODE')}"]),
        ("L2 guest booted", result.value("RMEM-L2-OK") == "boot", []),
        ("L2 sees 2 vCPUs", result.value("RMEM-L2-CPUS") == L2_CPUS,
         [f"RMEM-L2-CPUS {result.value('RMEM-L2-CPUS')}"]),
        ("L2 sees its RAM", L2_MEMKB_RANGE[0] <= memkb <= L2_MEMKB_RANGE[1],
         [f"MemTotal {memkb} kB"]),
        ("L2 virtio modules loaded", not result.has("RMEM-L2-MODFAIL"),
         [f"failed: {' '.join(result.values('RMEM-L2-MODFAIL'))}"]),
        ("virtio_rmem.ko loads, registers its virtio driver, unloads cleanly",
         result.value("RMEM-L2-RMEMMOD") == RMEMMOD_OK,
         [f"RMEM-L2-RMEMMOD {result.value('RMEM-L2-RMEMMOD')}"]),
        ("rmemtool runs in L2 and finds no /dev/rmem without a device",
         f"expect {RMEMTOOL_NO_DEVICE}" in result.values("RMEM-L2-TOOL"),
         [f"RMEM-L2-TOOL {v}" for v in result.values("RMEM-L2-TOOL")]),
        ("guest poweroff ends rmem-vmm with 0", result.value("RMEM-L1-VMM-EXIT") == "0",
         [f"RMEM-L1-VMM-EXIT {result.value('RMEM-L1-VMM-EXIT')}"]),
    ]
    for name, want in EXIT_CHECKS.items():
        got = exits.get(name, ["missing", "bad"])
        checks.append((f"{name} ends rmem-vmm with {want}", got == [want, "ok"],
                       [f"RMEM-L1-CHECK {name} {' '.join(got)}"]))
    checks.append(("scenario succeeded", result.passed, [soc.verdict(result)]))
    return checks


def main():
    return tap.run(
        [(mode, {"scenario": "vmm_boot", "mode": mode, "timeout": TIMEOUT}) for mode in MODES],
        lambda result, kwargs: boot_checks(result, kwargs["mode"]),
        lambda result: [f"SoC run {result.seconds:.1f} s, L2 boot (VMM start to exit) "
                        f"{result.value('RMEM-L1-VMM-SECONDS')} s, L2 kernel up at "
                        f"{result.value('RMEM-L2-UPTIME')} s"])


if __name__ == "__main__":
    sys.exit(main())
