#!/usr/bin/env python3
"""rmemd as a process: with the documented example configuration (sockets
moved to a scratch directory) and the memfd stand-in it says what it serves,
listens on every guest's socket, says that the stand-in and the firewall are
not restricting anything, and stops on SIGTERM (and SIGINT) with exit 0,
removing its sockets. Without
the host module and without --memory standin it refuses to start, naming
the device and what to do. Its state file: created and reported; a file
that is not a state database, or one from a newer rmemd, is refused
(naming it and --reset-state) and --reset-state starts empty from it; a
second rmemd on the same file is refused. A restart from a state that holds
a VM's buffer restores it, waits --reconnect-grace for the VM's VMM and,
when it does not come back, tears the VM down and records that;
`rmemctl audit` shows it (table and JSON). TAP output.

usage: rmemd_serve_test.py RMEMD RMEMCTL EXAMPLE.toml
"""
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GUESTS = ["decrypt", "display", "infotainment"]


def start(rmemd, config, *extra, state=None):
    state = state or Path(config).parent / "state.db"
    return subprocess.Popen([rmemd, "--config", str(config), "--state", str(state), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


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
    rmemd, rmemctl, example = sys.argv[1], sys.argv[2], sys.argv[3]
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
            out, err = stop(proc, sig)
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
            check(f"{sig.name}: reports its state file",
                  f"rmemd: state: {d / 'state.db'}" in out, out)
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

        # The state file.
        def refused(path, *extra):
            proc = start(rmemd, config, "--memory", "standin", *extra, state=path)
            return proc.communicate(timeout=20) + (proc.returncode,)

        garbage = d / "garbage.db"
        garbage.write_bytes(os.urandom(8192))
        out, err, rc = refused(garbage)
        check("a state file that is not a database: exit 1", rc == 1, f"rc {rc}\n{err}")
        check("... naming it and --reset-state", str(garbage) in err and "--reset-state" in err, err)
        check("... and listening on nothing",
              not any((d / f"{g}.sock").exists() for g in GUESTS))
        newer = d / "newer.db"
        db = sqlite3.connect(newer)
        db.execute("PRAGMA application_id = 1919772013")  # 'rmem'
        db.execute("PRAGMA user_version = 2")
        db.execute("CREATE TABLE future(x)")
        db.commit()
        db.close()
        out, err, rc = refused(newer)
        check("a state file from a newer rmemd: exit 1", rc == 1, f"rc {rc}\n{err}")
        check("... saying so", "newer rmemd" in err and "--reset-state" in err, err)
        proc = start(rmemd, config, "--memory", "standin", "--reset-state", state=garbage)
        up = wait_for_sockets(d, proc)
        out, err = stop(proc)
        check("--reset-state starts empty from it", up and proc.returncode == 0,
              f"rc {proc.returncode}\n{err}")
        check("... and says so", "(reset): 0 buffers" in out, out)
        first = start(rmemd, config, "--memory", "standin")
        up = wait_for_sockets(d, first)
        other = d / "other.toml"
        other.write_text(config.read_text().replace(f"{tmp}/", f"{tmp}/other-"))
        proc = subprocess.Popen([rmemd, "--config", str(other), "--state", str(d / "state.db"),
                                 "--memory", "standin"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=20)
        stop(first)
        check("a second rmemd on the same state file: exit 1", up and proc.returncode == 1,
              f"rc {proc.returncode}\n{err}")
        check("... naming the other rmemd", "another rmemd" in err, err)

        # A restart: the recorded buffer of vm 1 (decrypt) is restored, and
        # torn down when decrypt's VMM does not come back within the grace.
        state = d / "restart.db"
        proc = start(rmemd, config, "--memory", "standin", state=state)
        wait_for_sockets(d, proc)
        stop(proc)
        db = sqlite3.connect(state)
        db.execute("INSERT INTO buffers(id, owner, heap, carveout, first_pfn, pages, rights, "
                   "state, txn, mapped_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (0x1234, 1, "secure-video", "secure-video@70000000", 0x70000, 16, 7, 0,
                    None, 0))
        db.commit()
        db.close()
        proc = start(rmemd, config, "--memory", "standin", "--reconnect-grace", "1", state=state)
        up = wait_for_sockets(d, proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            db = sqlite3.connect(state)
            left = db.execute("SELECT count(*) FROM buffers").fetchone()[0]
            db.close()
            if left == 0:
                break
            time.sleep(0.2)
        out, err = stop(proc)
        check("a restart restores the recorded buffer", up and f"{state}: 1 buffers" in out, out)
        check("... waits for vm 1's VMM", "waiting up to 1s for the VMMs of vm 1" in out, out)
        check("... and tears vm 1 down when it does not come back",
              "vm 1: its VMM did not come back after the restart: torn down" in out, out)
        db = sqlite3.connect(state)
        left = db.execute("SELECT count(*) FROM buffers").fetchone()[0]
        audit = db.execute("SELECT op, action, vm, first_pfn, pages FROM audit").fetchall()
        db.close()
        check("... recording it (buffer gone, audit revoke)",
              left == 0 and ("teardown", "revoke", 1, 0x70000, 16) in audit, f"{left} {audit}")
        table = subprocess.run([rmemctl, "--state", str(state), "audit"], capture_output=True,
                               text=True, timeout=20)
        check("rmemctl audit shows the teardown",
              table.returncode == 0 and "teardown" in table.stdout and "revoke" in table.stdout
              and "0x1234" in table.stdout and "[0x70000000, 0x70010000)" in table.stdout,
              table.stdout + table.stderr)
        as_json = subprocess.run([rmemctl, "--state", str(state), "audit", "--json"],
                                 capture_output=True, text=True, timeout=20)
        try:
            entries = json.loads(as_json.stdout)
        except ValueError:
            entries = []
        check("rmemctl audit --json is JSON with the entry",
              any(e["op"] == "teardown" and e["buffer"] == 0x1234 and e["base"] == 0x70000000
                  and e["size"] == 0x10000 and e["rights"] == "read+write+cpu-map"
                  for e in entries), as_json.stdout + as_json.stderr)
        missing = subprocess.run([rmemctl, "--state", str(d / "none.db"), "audit"],
                                 capture_output=True, text=True, timeout=20)
        check("rmemctl audit on a missing database: exit 1 naming it",
              missing.returncode == 1 and "none.db" in missing.stderr, missing.stderr)

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
