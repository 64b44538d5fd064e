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
`rmemctl --state FILE audit` shows it (table and JSON).

The control socket and rmemctl: the socket is created mode 0600 in a
directory created 0700, and removed at stop; with three guests connected
(rmemd_fake_guests: decrypt shares a buffer with display, which retrieved
it) `rmemctl status` shows them, the buffer, the offer and the firewall,
and `status --json` carries the same values; `rmemctl audit` over the
socket and `rmemctl --state FILE audit` offline give the same entries,
paged by --after / --limit; rmemctl's errors: no socket, permission denied
(uid 65534, when run as root), rmemd's own error text, a timeout while
rmemd is stopped (SIGSTOP). The daemon conventions: --print-capabilities,
--log-level (error: nothing but errors; debug: the control clients),
--socket-path NAME=PATH (and its usage errors), --no-control. TAP output.

usage: rmemd_serve_test.py RMEMD RMEMCTL EXAMPLE.toml FAKE_GUESTS
"""
import json
import os
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tap_report import Checks  # noqa: E402

GUESTS = ["decrypt", "display", "infotainment"]


def start(rmemd, config, *extra, state=None):
    """rmemd serving `config`; its state in `state` (default: beside the
    configuration), or none when `extra` has --no-state."""
    state_args = [] if "--no-state" in extra else \
        ["--state", str(state or Path(config).parent / "state.db")]
    return subprocess.Popen([rmemd, "--config", str(config), *state_args, *extra],
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


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=20, **kw)


def wait_for(paths, proc, bound=10.0):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if all(Path(p).exists() for p in paths):
            return True
        time.sleep(0.05)
    return False


def read_line(proc, bound=20.0):
    """The first line the process prints, or "" if none within `bound`."""
    ready, _, _ = select.select([proc.stdout], [], [], bound)
    return proc.stdout.readline() if ready else ""


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def hexs(n):
    return f"0x{n:x}"


def control_tests(rmemd, rmemctl, fake_guests, d, config, check, skip):
    """The control socket and rmemctl, with three guests connected."""
    ctl_dir = d / "ctl"
    control = ctl_dir / "control"
    moved = d / "moved-display.sock"
    state = d / "live.db"
    socks = [d / "decrypt.sock", moved, d / "infotainment.sock"]
    proc = start(rmemd, config, "--memory", "standin", "--control", str(control),
                 "--socket-path", f"display={moved}", "--log-level", "debug", state=state)
    up = wait_for(socks + [control], proc)
    check("--control: rmemd listens on the control socket it was given", up)
    if not up:
        out, err = stop(proc)
        check("... (rmemd's output)", False, out + err)
        return
    check("the control socket is a socket of mode 0600",
          stat.S_ISSOCK(os.lstat(control).st_mode) and mode(control) == 0o600,
          oct(os.lstat(control).st_mode))
    check("... in a directory rmemd created with mode 0700", mode(ctl_dir) == 0o700,
          oct(mode(ctl_dir)))
    check("--socket-path display=PATH: display is served there, not on its configured socket",
          moved.exists() and not (d / "display.sock").exists())

    guests = subprocess.Popen([fake_guests, *[str(s) for s in socks]], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = read_line(guests)
    try:
        ids = json.loads(line)
    except ValueError:
        ids = None
    check("three guests connect; decrypt shares a buffer with display, which retrieves it",
          ids is not None, line + (guests.stderr.read() if guests.poll() is not None else ""))
    ids = ids or {"buffer": -1, "handle": -1, "decrypt_offset": -1, "display_offset": -1}

    table = run([rmemctl, "--control", control, "status"])
    out = table.stdout
    guest_rows = [l for l in out.splitlines()
                  if any(l.split()[1:2] == [g] for g in GUESTS) and "connected" in l]
    check("rmemctl status: exit 0, every guest's VMM connected", table.returncode == 0
          and len(guest_rows) == 3, out + table.stderr)
    check("rmemctl status: the buffer, its owner, state and both holders",
          any(hexs(ids["buffer"]) in l and "decrypt (1)" in l and "shared" in l
              and "display (2) read+cpu-map" in l for l in out.splitlines()), out)
    check("rmemctl status: the offer, retrieved by display",
          any(hexs(ids["handle"]) in l and "share" in l and "display (2) read+cpu-map (retrieved)"
              in l for l in out.splitlines()), out)
    check("rmemctl status: display's moved socket",
          f"display: socket {moved}" in out, out)
    check("rmemctl status: the TZC-400 lets the decoder write and the display read the frame",
          "/soc/firewall@2a4a0000 [0x73f00000, 0x74000000): 4 read+write, 5 read" in out, out)
    check("rmemctl status: pools and the fragmentation's definition",
          "fragmentation = 1 - largest free run / free" in out
          and any(l.split()[:5] == ["secure-video@70000000", "64", "MiB", "63", "MiB"]
                  for l in (x.strip() for x in out.splitlines())), out)

    as_json = run([rmemctl, "--control", control, "status", "--json"])
    try:
        doc = json.loads(as_json.stdout)
    except ValueError:
        doc = {}
    gs = doc.get("guests", [])
    check("status --json: every guest's VMM connected once",
          [(g.get("name"), g.get("vmm_connected"), g.get("vmm_connects")) for g in gs]
          == [(g, True, 1) for g in GUESTS], as_json.stdout[:3000] + as_json.stderr)
    check("status --json: display's socket is the one --socket-path gave",
          len(gs) == 3 and gs[1].get("socket") == str(moved), str(gs))
    bufs = doc.get("buffers", [])
    check("status --json: the one buffer, 1 MiB, owned by decrypt, shared, with its offer",
          len(bufs) == 1 and bufs[0].get("id") == ids["buffer"] and bufs[0].get("size") == 1 << 20
          and bufs[0].get("owner") == 1 and bufs[0].get("state") == "shared"
          and bufs[0].get("offer") == ids["handle"], str(bufs))
    check("status --json: the offer from decrypt to display, retrieved",
          doc.get("offers") == [{"handle": ids["handle"], "kind": "share", "buffer": ids["buffer"],
                                 "from": 1, "to": [{"vm": 2, "rights": "read+cpu-map",
                                                    "state": "retrieved"}]}],
          str(doc.get("offers")))
    check("status --json: the grants, mapped where the guests were told",
          [(g.get("vm"), g.get("as"), g.get("mapped"), g.get("region_offset"))
           for g in doc.get("grants", [])]
          == [(1, "owner", True, ids["decrypt_offset"]),
              (2, "receiver", True, ids["display_offset"])], str(doc.get("grants")))
    check("status --json: guests' mappings and requests",
          [(g.get("mappings"), g.get("requests")) for g in gs] == [(1, 2), (1, 1), (0, 0)]
          and doc.get("counters", {}).get("requests_served") == 3, str(gs))

    online = run([rmemctl, "--control", control, "audit", "--json"])
    offline = run([rmemctl, "--state", state, "audit", "--json"])
    try:
        entries, stored = json.loads(online.stdout), json.loads(offline.stdout)
    except ValueError:
        entries, stored = [], None
    check("rmemctl audit over the socket: alloc, share and retrieve of the buffer",
          [(e["op"], e["action"], e["vm"]) for e in entries if e["buffer"] in (0, ids["buffer"])]
          == [("alloc", "grant", 1), ("share", "offer", 2), ("retrieve", "grant", 2)],
          online.stdout + online.stderr)
    check("... the same entries as rmemctl --state FILE audit reads offline", entries == stored,
          online.stdout + offline.stdout + offline.stderr)
    if len(entries) >= 2:
        page = run([rmemctl, "--control", control, "audit", "--after", entries[0]["seq"],
                    "--limit", "1", "--json"])
        check("rmemctl audit --after SEQ --limit 1: exactly the next entry",
              page.returncode == 0 and json.loads(page.stdout) == entries[1:2], page.stdout)
    audit_table = run([rmemctl, "--control", control, "audit"])
    check("rmemctl audit (table): the entries and where they came from",
          audit_table.returncode == 0 and "alloc" in audit_table.stdout
          and hexs(ids["buffer"]) in audit_table.stdout
          and f"rmemctl: {len(entries)} entries from rmemd ({control})" in audit_table.stdout,
          audit_table.stdout + audit_table.stderr)

    # rmemctl's errors.
    missing = run([rmemctl, "--control", d / "nothing-here", "status"])
    check("rmemctl with no socket: exit 1, asking whether rmemd runs with --control",
          missing.returncode == 1 and "no control socket at" in missing.stderr
          and "is rmemd running with --control" in missing.stderr, missing.stderr)
    proc.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    late = run([rmemctl, "--control", control, "--timeout", "0.5", "status"])
    took = time.monotonic() - started
    proc.send_signal(signal.SIGCONT)
    check("rmemctl while rmemd does not answer: exit 1 after its --timeout",
          late.returncode == 1 and "did not answer within 500ms" in late.stderr and took < 10,
          late.stderr)
    if os.geteuid() == 0:
        # A copy of rmemctl that uid 65534 can run, outside our 0700 directories.
        shelf = Path(tempfile.mkdtemp(prefix="rmemctl-"))
        try:
            shelf.chmod(0o755)
            shutil.copy(rmemctl, shelf / "rmemctl")
            os.chmod(ctl_dir, 0o711)  # reachable: the socket's own mode is what refuses
            os.chmod(d, 0o711)
            denied = run([shelf / "rmemctl", "--control", control, "status"],
                         preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
        finally:
            os.chmod(ctl_dir, 0o700)
            os.chmod(d, 0o700)
            shutil.rmtree(shelf, ignore_errors=True)
        check("rmemctl as another user: exit 1, permission denied",
              denied.returncode == 1 and "permission denied on" in denied.stderr, denied.stderr)
    else:
        skip("rmemctl as another user: permission denied",
             "not root: cannot run rmemctl as uid 65534")
    after_stop = run([rmemctl, "--control", control, "status"])
    check("rmemd serves on after a client timed out", after_stop.returncode == 0,
          after_stop.stderr)

    # SIGTERM first: rmemd unmaps through the connected VMMs, so the guests
    # (one process) are not killed as VMMs that hang up with buffers mapped.
    out, err = stop(proc)
    guests.stdin.close()
    guests.wait(timeout=20)
    check("rmemd stops with exit 0, removes the control socket; the guests end cleanly",
          guests.returncode == 0 and proc.returncode == 0 and not control.exists(),
          f"guests {guests.returncode} rmemd {proc.returncode}\n{err}")
    check("--socket-path: rmemd says display is served on the moved socket",
          f"rmemd: serving display (vm 2) on {moved}" in out, out)
    check("--log-level debug: rmemd logs the control clients and their commands",
          "rmemd: control: pid " in out and " uid 0 connected" in out
          and " uid 0: status" in out and " uid 0: audit" in out, out)
    check("--log-level debug: ... and every guest request",
          "rmemd: vm 1: ALLOC: OK" in out and "rmemd: vm 1: SHARE: OK" in out
          and "rmemd: vm 2: RETRIEVE: OK" in out, out)
    if os.geteuid() == 0:
        check("... and why it refused none of them", "refused" not in out, out)

    # rmemd's own error, passed on: an rmemd that keeps no state has no audit log.
    nostate = start(rmemd, config, "--memory", "standin", "--no-state", "--control", str(control))
    wait_for([control], nostate)
    refused = run([rmemctl, "--control", control, "audit"])
    stop(nostate)
    check("rmemctl passes rmemd's error on: exit 1, 'rmemd: ... --no-state ...'",
          refused.returncode == 1 and "rmemctl: rmemd: " in refused.stderr
          and "--no-state" in refused.stderr, refused.stderr)


def option_tests(rmemd, rmemctl, d, config, check):
    """--print-capabilities, --log-level, --socket-path and --no-control."""
    caps = run([rmemd, "--print-capabilities"])
    try:
        caps_json = json.loads(caps.stdout)
    except ValueError:
        caps_json = None
    check("--print-capabilities: exit 0, the back-end convention's JSON, type rmem",
          caps.returncode == 0 and caps_json == {"type": "rmem", "features": []}, caps.stdout)

    usage = run([rmemd, "--log-level", "loud"])
    check("--log-level loud: usage error naming the levels",
          usage.returncode == 2 and "--log-level needs error, warn, info or debug" in usage.stderr,
          usage.stderr)
    for arg, want in [("nosuch=/tmp/x.sock",
                       "has no [[vm]] named 'nosuch' (it has: decrypt, display, infotainment)"),
                      ("display", "--socket-path needs NAME=PATH"),
                      ("=/tmp/x.sock", "--socket-path needs NAME=PATH"),
                      (f"display={d}/decrypt.sock", "is also the socket of another guest")]:
        r = run([rmemd, "--config", config, "--memory", "standin", "--no-state",
                 "--socket-path", arg])
        check(f"--socket-path {arg}: usage error, exit 2", r.returncode == 2 and want in r.stderr,
              r.stderr)

    quiet = start(rmemd, config, "--memory", "standin", "--no-state", "--log-level", "error",
                  "--no-control")
    up = wait_for_sockets(d, quiet)
    no_control = not (d / "control").exists()
    out, err = stop(quiet)
    check("--log-level error: serves, prints nothing but errors (none), exit 0",
          up and quiet.returncode == 0 and out == "" and err == "", out + err)
    check("--no-control: no control socket", up and no_control)


def main():
    rmemd, rmemctl, example, fake_guests = sys.argv[1:5]
    checks = Checks()
    check, skip = checks.check, checks.skip

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
            check(f"{sig.name}: said where its control socket was, and removed it",
                  f"rmemd: control socket: {d / 'control'}" in out
                  and not (d / "control").exists(), out)

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

        control_tests(rmemd, rmemctl, fake_guests, d, config, check, skip)
        option_tests(rmemd, rmemctl, d, config, check)

    return checks.report()


if __name__ == "__main__":
    sys.exit(main())
