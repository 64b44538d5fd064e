#!/usr/bin/env python3
"""dist/rmemd.service: systemd-analyze verify accepts it without a word (its
ExecStart pointed at the rmemd just built, since /usr/bin/rmemd is not
installed here); it has what docs/rmemd.md and dist/README.md promise
(Type=simple, the configuration at /etc/rmemd/rmemd.toml, SIGTERM to stop,
/run/rmemd as its 0700 runtime directory kept across Restart=on-failure,
/dev/rmem-carveout allowed under DevicePolicy=closed); and rmemd accepts
ExecStart's arguments with the sample configuration. Without
systemd-analyze the verification is skipped, loudly. TAP output.

usage: rmemd_unit_test.py RMEMD UNIT EXAMPLE.toml
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tap_report import Checks  # noqa: E402


def settings(text):
    """[Service] key -> list of values, in order."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def main():
    rmemd, unit, example = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    checks = Checks()
    check = checks.check

    text = unit.read_text()
    s = settings(text)
    want = {
        "Type": ["simple"],
        "ExecStart": ["/usr/bin/rmemd --config /etc/rmemd/rmemd.toml"],
        "KillSignal": ["SIGTERM"],
        "Restart": ["on-failure"],
        "RuntimeDirectory": ["rmemd"],
        "RuntimeDirectoryMode": ["0700"],
        "RuntimeDirectoryPreserve": ["restart"],
        "DevicePolicy": ["closed"],
        "DeviceAllow": ["/dev/rmem-carveout rw"],
    }
    for key, value in want.items():
        check(f"{key}={' '.join(value)}", s.get(key) == value, f"{key}: {s.get(key)}")
    check("CapabilityBoundingSet: CAP_SYS_RAWIO (the carve-out device) and CAP_KILL only",
          s.get("CapabilityBoundingSet") == ["CAP_SYS_RAWIO CAP_KILL"],
          str(s.get("CapabilityBoundingSet")))
    check("no PrivateDevices (it would hide /dev/rmem-carveout)", "PrivateDevices" not in s)

    args = s.get("ExecStart", [""])[0].split()[1:]
    args = [example if a == "/etc/rmemd/rmemd.toml" else a for a in args]
    fits = subprocess.run([rmemd, *args, "--check-config"], capture_output=True, text=True,
                          timeout=30)
    check("rmemd takes ExecStart's arguments with the sample configuration (--check-config)",
          fits.returncode == 0 and "fits" in fits.stdout, fits.stdout + fits.stderr)

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        checks.skip("systemd-analyze verify",
                    "systemd-analyze is not installed: dist/rmemd.service is NOT verified")
    else:
        with tempfile.TemporaryDirectory(prefix="rmemd-unit-") as tmp:
            copy = Path(tmp) / "rmemd.service"
            copy.write_text(text.replace("/usr/bin/rmemd", str(Path(rmemd).resolve())))
            r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                               timeout=60)
            said = (r.stdout + r.stderr).strip()
            check("systemd-analyze verify: accepted without a warning",
                  r.returncode == 0 and said == "", f"rc {r.returncode}\n{said}")

    return checks.report()


if __name__ == "__main__":
    sys.exit(main())
