#!/usr/bin/env python3
"""rmemd as a process: with the documented example configuration (sockets
moved to a scratch directory) and the memfd stand-in it says what it serves,
listens on every guest's socket, says that the stand-in and the firewall are
not restricting anything, and stops on SIGTERM (and SIGINT) with exit 0,
removing its sockets. Without
the host module and without --memory standin it refuses to start, naming
the device and what to do. TAP output.

usage: rmemd_serve_test.py RMEMD EXAMPLE.toml
"""
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GUESTS = ["decrypt", "display", "infotainment"]


def start(rmemd, config, *extra):
    return subprocess.Popen([rmemd, "--config", str(config), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_sockets(d, proc, bound=10.0):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if all((d / f"{g}.sock").exists() for g in GUESTS):
            return True
        time.sleep(0.05)
    return False


def main():
    rmemd, example = sys.argv[1], sys.argv[2]
    results = []

    def check(name, ok, detail=""):
        results.append((name, ok, detail))

    with tempfile.TemporaryDirectory(prefix="rmemd-serve-") as tmp:
        d = Path(tmp)
        config = d / "rmemd.toml"
        config.write_text(Path(example).read_text().replace("/run/rmemd", tmp))

        for sig in (signal.SIGTERM, signal.SIGINT):
            proc = start(rmemd, config, "--memory", "standin")
            up = wait_for_sockets(d, proc)
            check(f"{sig.name}: listens on every guest's socket", up)
            socks_ok = up and all(stat.S_ISSOCK(os.stat(d / f"{g}.sock").st_mode)
                                  for g in GUESTS)
            check(f"{sig.name}: the sockets are Unix sockets", socks_ok)
            proc.send_signal(sig)
            try:
                out, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            check(f"{sig.name}: exits 0", proc.returncode == 0,
                  f"rc {proc.returncode}\n{err}")
            for g in GUESTS:
                check(f"{sig.name}: says it serves {g}",
                      f"rmemd: serving {g} " in out, out)
            check(f"{sig.name}: names the stand-in as not restricted",
                  "memfd" in out.lower() and "not" in out.lower(), out)
            check(f"{sig.name}: names both firewalls as models that restrict no DMA master",
                  "TZC-400 MODEL" in out and "block-granular controller MODEL" in out
                  and "NOT restricted" in out, out)
            check(f"{sig.name}: says it stopped", "rmemd: stopped" in out, out)
            check(f"{sig.name}: removes its sockets",
                  not any((d / f"{g}.sock").exists() for g in GUESTS))

        # No host module (or another device): refuses, naming what to do.
        proc = start(rmemd, config, "--memory", str(d / "no-such-device"))
        out, err = proc.communicate(timeout=20)
        check("a missing carve-out device: exit 1", proc.returncode == 1,
              f"rc {proc.returncode}\n{err}")
        check("... naming the device and the stand-in option",
              "no-such-device" in err and "--memory standin" in err, err)
        check("... and listening on nothing", not any((d / f"{g}.sock").exists()
                                                     for g in GUESTS))

        # A socket path that cannot be created: refuses, naming it.
        bad = config.read_text().replace(f"{tmp}/display.sock", f"{tmp}/missing/dir/display.sock")
        bad_config = d / "bad.toml"
        bad_config.write_text(bad)
        proc = start(rmemd, bad_config, "--memory", "standin")
        out, err = proc.communicate(timeout=20)
        check("an unusable socket path: exit 1", proc.returncode == 1,
              f"rc {proc.returncode}\n{err}")
        check("... naming it", "missing/dir/display.sock" in err, err)

    print(f"1..{len(results)}")
    failed = 0
    for i, (name, ok, detail) in enumerate(results, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - {name}")
        if not ok:
            failed += 1
            for line in str(detail).splitlines()[:40]:
                print(f"# {line}")
                print(f"# {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
