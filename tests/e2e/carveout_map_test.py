#!/usr/bin/env python3
"""host_driver/rmem_carveout on the test SoC, and the memory type a guest
gets for carve-out pages. In L1: the module loads, /dev/rmem-carveout is
root-only and lists both carve-outs of images/platform/rmem-carveouts.dtsi,
mmaps inside a carve-out work (a pattern written reads back through a second
mapping), mmaps outside, straddling, unaligned, overflowing or private are
refused, a read-only open gives read-only mappings only, opening needs
CAP_SYS_RAWIO, the module cannot be removed while mapped and can after.
Then rmem-shmem-test-backend --carveout hands carve-out pages to an L2 guest
through rmem-vmm, and the guest's rmem_l2_probe.ko does what only Normal
memory allows on its read-write page (unaligned load, DC ZVA, LDXR/STXR);
L1 reads the results back from the carve-out. KVM's own stage-2 map calls
for carve-out pages (a kprobe) must all be Normal, not Device: QEMU 7.2's TCG
does not fault Device-memory misuse (docs/test-platform.md), so that is the
check that fails for a no-map carve-out. VHE and protected (pKVM), in
parallel; see images/l1/scenarios/carveout_map.sh. TAP output.
"""

import re
import sys

import tap
from tap import soc

MODES = ["vhe", "protected"]
TIMEOUT = 300
CARVEOUTS = [("0x70000000", "0x4000000", "secure-video@70000000"),
             ("0x74000000", "0x1000000", "secure-ui@74000000")]
# Every check rmem-carveout-check runs (tests/e2e/programs/carveout_check.cc).
CHECKS = ["listing", *[f"{kind}-{name}" for _, _, name in CARVEOUTS
                       for kind in ("pattern", "pattern", "whole")],
          "refuse-below", "refuse-straddle-start", "refuse-straddle-end",
          "refuse-longer-than-carveout", "refuse-kernel-ram", "refuse-unaligned",
          "refuse-overflow", "refuse-private", f"refuse-across-{CARVEOUTS[0][2]}",
          "readonly-map", "readonly-no-mprotect-write", "readonly-refuse-write",
          "open-needs-cap-sys-rawio"]
PROBES = ["unaligned-load", "dc-zva", "ldxr-stxr"]
MAILBOX = 0x70200000
# What rmem_l2_probe leaves in the mailbox page (its offsets and values).
PEEKS = {f"0x{MAILBOX + 0x80:x}": ["0x000000000000002a"],
         f"0x{MAILBOX + 0x100:x}": ["0x1716151413121110", "0x1f1e1d1c1b1a1918"],
         f"0x{MAILBOX + 0x800:x}": ["0x0000000000000000"] * 8}
S2MAP = re.compile(r"ipa=(0x[0-9a-f]+) size=(0x[0-9a-f]+) phys=(0x[0-9a-f]+) "
                   r"prot=(0x[0-9a-f]+) device=(yes|no)")


def check_names(result):
    """{check name (the pattern ones with their page): (ok, detail)}."""
    checks = {}
    for value in result.values("RMEM-CARVEOUT-CHECK"):
        name, _, rest = value.partition(" ")
        verdict, _, detail = rest.partition(" ")
        key = name.rsplit("-first-page", 1)[0].rsplit("-last-page", 1)[0]
        checks.setdefault(key, []).append((verdict == "ok", f"{name} {rest}"))
    return checks


def carveout_checks(result, mode):
    listing = [tuple(v.split()) for v in result.values("RMEM-L1-CARVEOUT-LIST")]
    ran = check_names(result)
    want_counts = {name: CHECKS.count(name) for name in CHECKS}
    interface = [(name, [ok for ok, _ in ran.get(name, [])]) for name in want_counts]
    probes = {v.split()[0]: v for v in result.values("RMEM-L2-PROBE")}
    s2maps = [S2MAP.search(v) for v in result.values("RMEM-L1-S2MAP")]
    peeks = {v.split()[0]: v.split()[1:] for v in result.values("RMEM-CARVEOUT-PEEK")}
    checks = [
        ("KVM mode", result.value("RMEM-L1-KVMMODE") == mode,
         [f"RMEM-L1-KVMMODE {result.value('RMEM-L1-KVMMODE')}"]),
        ("rmem_carveout.ko loads", result.value("RMEM-L1-CARVEOUT-INSMOD") == "rc=0",
         [f"RMEM-L1-CARVEOUT-INSMOD {result.value('RMEM-L1-CARVEOUT-INSMOD')}",
          *result.values("RMEM-L1-CARVEOUT-DMESG")]),
        ("/dev/rmem-carveout is root-only (crw-------, uid 0)",
         result.value("RMEM-L1-CARVEOUT-DEV") == "crw------- 0",
         [f"RMEM-L1-CARVEOUT-DEV {result.value('RMEM-L1-CARVEOUT-DEV')}"]),
        ("lists exactly the platform's two carve-outs", listing == CARVEOUTS,
         [f"want {CARVEOUTS}", f"got {listing}"]),
    ]
    for name, oks in interface:
        want = want_counts[name]
        checks.append((f"{name}: ok", len(oks) == want and all(oks),
                       [d for _, d in ran.get(name, [])] or ["not run"]))
    checks += [
        ("the back-end's pieces come from the carve-out and the guest's write "
         "reaches it", result.values("RMEM-BACKEND-GUEST-WROTE") == ["0xfeedf00d"],
         [f"RMEM-BACKEND-GUEST-WROTE {result.values('RMEM-BACKEND-GUEST-WROTE')}"]),
        ("guest reads carve-out piece A, then B after the remap",
         [v.lower() for v in result.values("RMEM-L2-SHM-READ") +
          result.values("RMEM-L2-SHM-REMAP")] == ["0xa11ce001", "0xb0b0b002"],
         [f"READ {result.values('RMEM-L2-SHM-READ')} REMAP "
          f"{result.values('RMEM-L2-SHM-REMAP')}"]),
    ]
    for probe in PROBES:
        got = probes.get(probe, "")
        checks.append((f"guest {probe} on a carve-out page as Normal memory",
                       got.split()[1:2] == ["ok"], [f"RMEM-L2-PROBE {got or 'missing'}"]))
    checks += [
        ("the guest probe ran to its end", not result.has("RMEM-L2-PROBE-CRASHED")
         and result.value("RMEM-L2-PROBE-INSMOD") == "rc=0",
         [f"RMEM-L2-PROBE-INSMOD {result.value('RMEM-L2-PROBE-INSMOD')}"]),
        ("the guest powered off normally", result.values("RMEM-L1-VMM-EXIT") == ["0"],
         [f"RMEM-L1-VMM-EXIT {result.values('RMEM-L1-VMM-EXIT')}"]),
    ]
    for phys, want in PEEKS.items():
        checks.append((f"L1 reads the guest's probe results at {phys} from the carve-out",
                       peeks.get(phys) == want, [f"want {want}", f"got {peeks.get(phys)}"]))
    checks += [
        ("kprobe on kvm_pgtable_stage2_map", result.value("RMEM-L1-S2MAP-KPROBE") == "yes",
         [f"RMEM-L1-S2MAP-KPROBE {result.value('RMEM-L1-S2MAP-KPROBE')}"]),
        ("KVM mapped carve-out pages into the guest's stage 2 as Normal memory",
         bool(s2maps) and all(m and m.group(5) == "no" for m in s2maps),
         result.values("RMEM-L1-S2MAP") or ["no stage-2 map of a carve-out page seen"]),
        ("rmmod refused while the device is open",
         result.value("RMEM-L1-CARVEOUT-RMMOD-BUSY") == "yes", []),
        ("rmmod afterwards removes the device",
         result.value("RMEM-L1-CARVEOUT-RMMOD") == "rc=0 node=gone",
         [f"RMEM-L1-CARVEOUT-RMMOD {result.value('RMEM-L1-CARVEOUT-RMMOD')}"]),
        ("scenario succeeded", result.passed, [soc.verdict(result)]),
    ]
    return checks


def main():
    return tap.run(
        [(mode, {"scenario": "carveout_map", "mode": mode, "timeout": TIMEOUT})
         for mode in MODES],
        lambda result, kwargs: carveout_checks(result, kwargs["mode"]),
        lambda result: [f"SoC run {result.seconds:.1f} s, guest run "
                        f"{' / '.join(result.values('RMEM-L1-VMM-SECONDS'))} s",
                        *(f"RMEM-L2-PROBE {v}" for v in result.values("RMEM-L2-PROBE")),
                        *(f"RMEM-L1-S2MAP {v}" for v in result.values("RMEM-L1-S2MAP")[:4])])


if __name__ == "__main__":
    sys.exit(main())
