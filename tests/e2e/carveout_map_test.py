#!/usr/bin/env python3
"""host_driver/rmem_carveout on the test SoC, and the memory type a guest
gets for carve-out pages. In L1: the module loads, /dev/rmem-carveout is
root-only and lists both carve-outs of images/platform/rmem-carveouts.dtsi,
mmaps inside a carve-out work (a pattern written reads back through a second
mapping), mmaps outside, straddling, unaligned, overflowing or private are
refused, a read-only open gives read-only mappings only, opening needs
CAP_SYS_RAWIO. Pieces (host_driver/uapi/rmem_carveout.h), the piece-* checks:
a request outside, straddling, unaligned, empty, overflowing or with unknown
flags is refused, and so is any from a read-only open; a piece is an O_CLOEXEC
file of its size that cannot be reopened through /proc; a read-write piece maps
exactly its range (a pattern written through it reads back through the
device's mapping at that physical address, a page at an offset is that page),
not beyond it nor privately; a read-only one reads the same memory and can
never be written; only its issuer revokes it (another open: EPERM; not a
piece: EINVAL; no fd: EBADF), and revoking makes its mappings in this process
and in a forked child SIGBUS and new ones ENODEV, idempotently; closing the
issuing device file revokes its pieces; a piece's mapping alone keeps the
module from being removed. The module cannot be removed while the device is
open and can once nothing (no device file, no piece) is left.
Then rmem-shmem-test-backend --carveout hands carve-out pages to an L2 guest
through rmem-vmm -- a piece per map, as rmemd does, never the device -- and
the guest's rmem_l2_probe.ko does what only Normal memory allows on its
read-write page (unaligned load, DC ZVA, LDXR/STXR);
L1 reads the results back from the carve-out. Then the back-end revokes a
piece under the guest's live mapping (--revoke-live): the guest reads it
first; after the revoke -- no unmap yet -- its next load must not get the
data (the MMU notifier took KVM's stage-2 entry: KVM_RUN fails with EFAULT,
rmem-vmm says so and holds the vCPU, for the two seconds until the
back-end unmaps the piece); after the unmap it is a violation at the piece's
guest physical address, an external abort (SIGBUS) in the guest, which goes
on and powers off, rmem-vmm exit 5; L1's kernel logs no WARNING.
KVM's own stage-2 map calls
for carve-out pages (a kprobe) must all be Normal, not Device: QEMU 7.2's TCG
does not fault Device-memory misuse (docs/test-platform.md), so that is the
check that fails for a no-map carve-out. VHE and protected (pKVM), in
parallel; see images/l1/scenarios/carveout_map.sh. TAP output.
"""

import re
import sys

import tap
from l2_access import access_fields, esr_is_external_data_abort
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
          "piece-refuse-outside", "piece-refuse-straddle", "piece-refuse-unaligned",
          "piece-refuse-zero", "piece-refuse-overflow", "piece-refuse-flags",
          "piece-refuse-readonly-device", "piece-issue", "piece-fd-flags", "piece-fstat-size",
          "piece-no-reopen", "piece-rw-map", "piece-map-offset", "piece-refuse-beyond",
          "piece-refuse-private", "piece-ro-refuse-write", "piece-ro-reads",
          "piece-ro-no-mprotect-write", "piece-revoke-other-session", "piece-revoke-not-a-piece",
          "piece-revoke-bad-fd", "piece-revoke-sigbus", "piece-revoke-idempotent",
          "piece-revoke-no-remap", "piece-revoke-on-close",
          "open-needs-cap-sys-rawio", "piece-holds-module"]
PROBES = ["unaligned-load", "dc-zva", "ldxr-stxr"]
MAILBOX = 0x70200000
# What rmem_l2_probe leaves in the mailbox page (its offsets and values).
PEEKS = {f"0x{MAILBOX + 0x80:x}": ["0x000000000000002a"],
         f"0x{MAILBOX + 0x100:x}": ["0x1716151413121110", "0x1f1e1d1c1b1a1918"],
         f"0x{MAILBOX + 0x800:x}": ["0x0000000000000000"] * 8}
# The back-end's step 8: piece A mapped afresh at region offset 2 MiB,
# revoked under the guest, unmapped 2 s (kLiveLinger) after its load.
LIVE_IPA = "0x8000200000"
LIVE_REPORT = (f"guest read of unmapped offset 0x200000 of shared memory region 0 at {LIVE_IPA}"
               ": external abort injected")
EFAULT_WAIT = re.compile(r"^vCPU \d+: KVM cannot map a page of guest memory \(EFAULT\): "
                         r"waiting for a revoked shared memory piece to be removed$")
# One load, one vCPU: rmem-vmm logs the wait exactly once (an EFAULT after a
# change it had not seen yet, the piece's own map, retries without a word).
BUS_OBJERR = "3"
# The load after the revoke waits in rmem-vmm until the unmap, which comes
# 2 s after the guest said it was loading; rmem-vmm gives up after 5 s.
HELD_MS = (1000, 5000)
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






def held_ms(fields):
    try:
        return int(fields.get("took_ms", ""))
    except ValueError:
        return None


def revoke_checks(result):
    """The revoke of a piece under the guest's live mapping."""
    revoke = {}
    for value in result.values("RMEM-L2-SHM-REVOKE"):
        when, _, line = value.partition(" ")
        revoke.setdefault(when, line)
    before, after = revoke.get("before"), revoke.get("after")
    kind, fields = access_fields(after)
    held = held_ms(fields)
    waits = result.values("RMEM-L1-VMM-EFAULT-WAIT")
    reports = result.values("RMEM-L1-SHM-VIOLATION")
    backend = [f"RMEM-BACKEND-LIVE-{step} {result.values(f'RMEM-BACKEND-LIVE-{step}')}"
               for step in ("MAPPED", "REVOKED", "NO-LOAD", "UNMAPPED")]
    return [
        ("revoke under a live mapping: the guest reads the piece before the revoke",
         (before or "").lower() == "ok 0xa11ce001",
         [f"RMEM-L2-SHM-REVOKE before {before or 'missing'}"]),
        ("revoke under a live mapping: the back-end revoked the piece without unmapping "
         "it, the guest loaded from it in between, then the unmap succeeded",
         result.has("RMEM-BACKEND-LIVE-MAPPED") and result.has("RMEM-BACKEND-LIVE-REVOKED")
         and not result.has("RMEM-BACKEND-LIVE-NO-LOAD")
         and result.values("RMEM-BACKEND-LIVE-UNMAPPED") == ["0"], backend),
        ("revoke under a live mapping: after the revoke the guest's load gets no data "
         "(KVM's stage-2 entry went with the revoke) but SIGBUS (BUS_OBJERR) at its own "
         "address and instruction, registers untouched",
         kind == "sigbus" and fields.get("code") == BUS_OBJERR
         and fields.get("addr") == "exact" and fields.get("pc") == "exact"
         and fields.get("regs") == "untouched",
         [f"RMEM-L2-SHM-REVOKE after {after or 'missing'}"]),
        ("revoke under a live mapping: the guest's ESR says synchronous external data abort",
         esr_is_external_data_abort(fields.get("esr")), [f"esr {fields.get('esr', 'missing')}"]),
        ("revoke under a live mapping: rmem-vmm said KVM_RUN failed with EFAULT and waited "
         "(once, for the one load)",
         len(waits) == 1 and EFAULT_WAIT.match(waits[0]),
         [f"RMEM-L1-VMM-EFAULT-WAIT {w}" for w in waits] or ["no such line from rmem-vmm"]),
        (f"revoke under a live mapping: the load was held until the unmap "
         f"({HELD_MS[0]}..{HELD_MS[1]} ms)",
         held is not None and HELD_MS[0] <= held <= HELD_MS[1],
         [f"took_ms {fields.get('took_ms', 'missing')}"]),
        ("revoke under a live mapping: after the unmap, a violation at the piece's guest "
         "physical address, external abort injected; the only one",
         len(reports) == 1 and reports[0].endswith(LIVE_REPORT)
         and result.value("RMEM-L1-SHM-VIOLATIONS") == "1 (1 logged)",
         [f"want ...{LIVE_REPORT}", *[f"got {r}" for r in reports],
          f"RMEM-L1-SHM-VIOLATIONS {result.value('RMEM-L1-SHM-VIOLATIONS')}"]),
        tap.kernel_warnings_check(result),
    ]


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
        ("rmem-vmm got a carve-out piece per map, never the device: 9 issued, the 6 "
         "refused ones and A after its unmap revoked, the mailbox and B held; after the "
         "live revoke 10, 8 and the same 2",
         result.values("RMEM-BACKEND-PIECES") == ["issued=9 revoked=7 held=2",
                                                  "issued=10 revoked=8 held=2"],
         [f"RMEM-BACKEND-PIECES {result.values('RMEM-BACKEND-PIECES')}"]),
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
        ("the guest went on after the revoked piece's violation and powered off: "
         "rmem-vmm did not die and exited 5 (violations recorded)",
         result.values("RMEM-L2-DONE") == ["rc=0"] and result.values("RMEM-L1-VMM-EXIT") == ["5"]
         and result.value("RMEM-L1-SHM-STOPPED") == "no"
         and not result.has("RMEM-L2-SHM-NO-ACK"),
         [f"RMEM-L2-DONE {result.values('RMEM-L2-DONE')}",
          f"RMEM-L1-VMM-EXIT {result.values('RMEM-L1-VMM-EXIT')}",
          f"RMEM-L1-SHM-STOPPED {result.value('RMEM-L1-SHM-STOPPED')}",
          f"RMEM-L2-SHM-NO-ACK {result.values('RMEM-L2-SHM-NO-ACK')}"]),
        *revoke_checks(result),
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
        ("rmmod afterwards (no device file, no piece left) removes the device",
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
                        *(f"RMEM-L2-SHM-REVOKE {v}" for v in result.values("RMEM-L2-SHM-REVOKE")),
                        *(f"rmem-vmm: {v}" for v in result.values("RMEM-L1-VMM-EFAULT-WAIT")),
                        *(f"RMEM-L1-S2MAP {v}" for v in result.values("RMEM-L1-S2MAP")[:4])])


if __name__ == "__main__":
    sys.exit(main())
