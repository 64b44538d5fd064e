#!/usr/bin/env python3
"""rmem-vmm gives its L2 guest virtio devices served by Debian's vhost-user
back-ends inside the test SoC (L1): virtio-blk by qemu-storage-daemon (two
disks on one VM) and virtio-fs by virtiofsd, each in VHE and protected
mode, the whole path guest driver <-> virtio-mmio <-> rmem-vmm <->
vhost-user <-> back-end. The guest
reads what L1 prepared and L1 checks what the guest wrote. See
images/l1/scenarios/vmm_blk.sh and vmm_fs.sh. TAP output.
"""

import sys

import tap
from tap import soc

BOOTS = [("vmm_blk", "vhe"), ("vmm_blk", "protected"), ("vmm_fs", "vhe"),
         ("vmm_fs", "protected")]
TIMEOUT = 240
BACKENDS = {"vmm_blk": "qemu-storage-daemon", "vmm_fs": "virtiofsd"}


def marker(result, name):
    return f"{name} {result.value(name)}"


def common_checks(result, scenario, mode):
    """The SoC, the guest and the back-end came up and ended cleanly."""
    backend = BACKENDS[scenario]
    backend_exit = dict(v.split(maxsplit=1) for v in result.values("RMEM-L1-BACKEND-EXIT")
                        if " " in v)
    return [
        ("KVM mode", result.value("RMEM-L1-KVMMODE") == mode,
         [marker(result, "RMEM-L1-KVMMODE")]),
        ("L2 guest booted", result.has("RMEM-L2-UP"), []),
        ("L2 virtio modules loaded", not result.has("RMEM-L2-MODFAIL"),
         [f"failed: {' '.join(result.values('RMEM-L2-MODFAIL'))}"]),
        ("L2 scenario succeeded", result.value("RMEM-L2-DONE") == "rc=0",
         [marker(result, "RMEM-L2-DONE")]),
        ("guest poweroff ends rmem-vmm with 0", result.value("RMEM-L1-VMM-EXIT") == "0",
         [marker(result, "RMEM-L1-VMM-EXIT")]),
        (f"{backend} ended cleanly", backend_exit.get(backend) == "0",
         [f"RMEM-L1-BACKEND-EXIT {backend} {backend_exit.get(backend)}"]),
    ]


def blk_checks(result):
    expect = result.value("RMEM-L1-BLK-EXPECT")
    gone = dict(v.split(maxsplit=1) for v in result.values("RMEM-L1-CHECK") if " " in v)
    return [
        ("back-end killed under a running guest: reported, rmem-vmm keeps going",
         (gone.get("backend-gone") or "").endswith(" ok"),
         [f"RMEM-L1-CHECK backend-gone {gone.get('backend-gone')}"]),
        ("a second device on the same VM works (4 MiB disk)",
         result.value("RMEM-L2-BLK2-SECTORS") == "8192",
         [marker(result, "RMEM-L2-BLK2-SECTORS")]),
        ("guest reads the disk L1 wrote", expect is not None
         and result.value("RMEM-L2-BLK-READ") == expect,
         [marker(result, "RMEM-L1-BLK-EXPECT"), marker(result, "RMEM-L2-BLK-READ")]),
        ("L1 finds what the guest wrote in the image",
         (result.value("RMEM-L1-BLK-VERIFY") or "").endswith(" ok"),
         [marker(result, "RMEM-L2-BLK-WROTE"), marker(result, "RMEM-L1-BLK-VERIFY")]),
    ]


def fs_checks(result):
    expect = result.value("RMEM-L1-FS-EXPECT")
    return [
        ("guest lists the share", "hello.txt" in (result.value("RMEM-L2-FS-LIST") or "").split(),
         [marker(result, "RMEM-L2-FS-LIST")]),
        ("guest reads the file L1 wrote", expect is not None
         and result.value("RMEM-L2-FS-READ") == expect,
         [marker(result, "RMEM-L1-FS-EXPECT"), marker(result, "RMEM-L2-FS-READ")]),
        ("L1 finds the file the guest wrote",
         (result.value("RMEM-L1-FS-VERIFY") or "").endswith(" ok"),
         [marker(result, "RMEM-L2-FS-WROTE"), marker(result, "RMEM-L1-FS-VERIFY")]),
    ]


SCENARIO_CHECKS = {"vmm_blk": blk_checks, "vmm_fs": fs_checks}


def checks(result, kwargs):
    scenario, mode = kwargs["scenario"], kwargs["mode"]
    return [*common_checks(result, scenario, mode), *SCENARIO_CHECKS[scenario](result),
            ("scenario succeeded", result.passed, [soc.verdict(result)])]


def main():
    return tap.run(
        [(f"{scenario} {mode}", {"scenario": scenario, "mode": mode, "timeout": TIMEOUT})
         for scenario, mode in BOOTS],
        checks,
        lambda result: [f"SoC run {result.seconds:.1f} s, L2 boot (VMM start to exit) "
                        f"{result.value('RMEM-L1-VMM-SECONDS')} s"])


if __name__ == "__main__":
    sys.exit(main())
