#!/usr/bin/env python3
"""End-to-end smoke test of the test SoC: boots L1 scenario "smoke" with KVM
in VHE and in protected (pKVM) mode, two boots in parallel, and checks what
L1 reports. Output is TAP; the exit status is non-zero if any check failed.

Needs build/images/ (run images/build); without it the test fails, never
skips.
"""

import json
import sys

import tap
from tap import soc

MODES = ["vhe", "protected"]
# The carve-outs of images/platform/rmem-carveouts.dtsi, as L1 names them.
CARVEOUTS = ["secure-video@70000000", "secure-ui@74000000"]
# The same, as rmemd --check-firmware reports them: (base, size, use_case).
RMEMD_CARVEOUTS = [("0x70000000", "0x4000000", "secure-video"),
                   ("0x74000000", "0x1000000", "secure-ui")]
TIMEOUT = 120


def rmemd_check(result):
    """rmemd --check-firmware on L1's own /sys/firmware/fdt: (exit, JSON or None)."""
    exit_code, _, text = (result.value("RMEM-L1-RMEMD-CHECK") or "").partition(" ")
    try:
        return exit_code, json.loads(text)
    except json.JSONDecodeError:
        return exit_code, None


def boot_checks(result, mode):
    """[(description, passed, details)] for one boot."""
    resmem = (result.value("RMEM-L1-RESMEM") or "").split()
    rmemd_exit, rmemd_verdict = rmemd_check(result)
    return [
        ("L1 booted", result.has("RMEM-L1-UP"), []),
        ("/dev/kvm in L1", result.value("RMEM-L1-KVM") == "yes",
         [f"RMEM-L1-KVM {result.value('RMEM-L1-KVM')}"]),
        (f"KVM in {mode} mode", result.value("RMEM-L1-KVMMODE") == mode,
         [f"RMEM-L1-KVMMODE {result.value('RMEM-L1-KVMMODE')}"]),
        ("carve-outs in /reserved-memory", all(c in resmem for c in CARVEOUTS),
         [f"want {' '.join(CARVEOUTS)}", f"got {' '.join(resmem) or 'none'}"]),
        ("rmemd accepts the firmware L1 booted with (/sys/firmware/fdt)",
         rmemd_exit == "0" and (rmemd_verdict or {}).get("result") == "accept",
         [f"RMEM-L1-RMEMD-CHECK {result.value('RMEM-L1-RMEMD-CHECK')}"]),
        ("rmemd reads the platform's two carve-outs",
         [(c["base"], c["size"], c["use_case"])
          for c in (rmemd_verdict or {}).get("carveouts", [])] == RMEMD_CARVEOUTS,
         [f"want {RMEMD_CARVEOUTS}"]),
        ("smoke scenario ran", result.value("RMEM-L1-OK") == "smoke", []),
        ("scenario succeeded", result.passed, [soc.verdict(result)]),
    ]


def main():
    return tap.run(
        [(mode, {"scenario": "smoke", "mode": mode, "timeout": TIMEOUT}) for mode in MODES],
        lambda result, kwargs: boot_checks(result, kwargs["mode"]),
        lambda result: [f"boot took {result.seconds:.1f} s"])


if __name__ == "__main__":
    sys.exit(main())
