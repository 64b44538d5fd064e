"""Boots the rmem test SoC (an emulated arm64 machine with KVM inside) and
reports what its console said.

The SoC is QEMU's `virt` machine with EL2 (`virtualization=on`), running
Debian's arm64 kernel with build/images/l1.cpio as its initramfs and
build/images/soc.dtb (QEMU's own device tree plus the rmem carve-outs) as its
device tree; images/build makes all three. The L1 init runs the scenario
/scenarios/<name>.sh and prints `RMEM-` marker lines, which become
SocResult.markers.

As a program: `python3 images/soc.py <scenario> [--mode m] [--timeout s]`
prints the console and a verdict, and exits 0 iff the scenario ended with
`RMEM-L1-DONE rc=0`; with `--stream` it prints the console as it comes,
without the kernels' own log lines.
"""

import argparse
import concurrent.futures
import dataclasses
import hashlib
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "images"
CARVEOUTS_DTSI = ROOT / "images" / "platform" / "rmem-carveouts.dtsi"

QEMU = "qemu-system-aarch64"
# The machine, shared by every boot and by the device-tree dump, so that the
# device tree always describes the machine it is booted on. Without
# pauth-impdef=on, pointer authentication is emulated exactly and boots are
# about 3x slower. With a NIC, QEMU looks for efi-virtio.rom, which is not
# installed.
MACHINE = ["-M", "virt,virtualization=on,gic-version=3",
           "-cpu", "max,pauth-impdef=on", "-nic", "none"]
DEFAULT_SMP = 2
DEFAULT_MEM_MB = 2048

# Kernel argument selecting KVM's mode in L1; VHE is the default on `-cpu max`.
MODES = {"vhe": "", "nvhe": "kvm-arm.mode=nvhe",
         "protected": "kvm-arm.mode=protected"}

MARKER = re.compile(r"^(RMEM-[A-Za-z0-9_-]+)(?:\s+(.*))?$")
# A kernel's own log line ("[   12.345678] ..."), in L1 or, after the
# "<guest>: " prefix an L1 scenario gives its guests' consoles, in L2.
KERNEL_LOG = re.compile(r"^(?:[\w-]+: )?\[\s*\d+\.\d+\]")


class SocError(Exception):
    """The SoC could not be started (missing images, broken device tree)."""


@dataclasses.dataclass
class SocResult:
    """One boot: its console, the RMEM- markers on it, and how it ended."""

    scenario: str
    mode: str
    console: str
    markers: list  # (name, rest) per console line starting with "RMEM-"
    seconds: float
    exit_code: int | None  # QEMU's; None if it was killed on timeout
    timed_out: bool

    def has(self, name):
        """Whether a marker `name` (e.g. "RMEM-L1-UP") was printed."""
        return any(n == name for n, _ in self.markers)

    def value(self, name):
        """The rest of the first `name` marker line, or None."""
        values = self.values(name)
        return values[0] if values else None

    def values(self, name):
        """The rest of every `name` marker line, in console order."""
        return [rest for n, rest in self.markers if n == name]

    @property
    def passed(self):
        """The L1 scenario ran to completion and succeeded."""
        return not self.timed_out and self.value("RMEM-L1-DONE") == "rc=0"


def parse_markers(console):
    """The (name, rest) of each console line that starts with "RMEM-"."""
    markers = []
    for line in console.splitlines():
        match = MARKER.match(line.strip())
        if match:
            markers.append((match.group(1), match.group(2) or ""))
    return markers


def _run_checked(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SocError(f"{what} failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
    return proc.stdout


def dtb_path(smp=DEFAULT_SMP, mem_mb=DEFAULT_MEM_MB, carveouts=None):
    """Where the device tree for this machine size (and, if not the
    platform's, this carve-outs .dtsi) lives."""
    name = "soc"
    if carveouts is not None and Path(carveouts).resolve() != CARVEOUTS_DTSI:
        name += f"-{Path(carveouts).stem}"
    if (smp, mem_mb) != (DEFAULT_SMP, DEFAULT_MEM_MB):
        name += f"-{smp}cpu-{mem_mb}m"
    return OUT / f"{name}.dtb"


def ensure_dtb(smp=DEFAULT_SMP, mem_mb=DEFAULT_MEM_MB, force=False,
               carveouts=None):
    """Builds, unless up to date, QEMU virt's device tree for `smp` CPUs and
    `mem_mb` MiB with the carve-outs of rmem-carveouts.dtsi (or of the
    .dtsi `carveouts`, for experiments) appended.

    The CPU and memory nodes depend on the machine size, so each size gets its
    own blob. Returns (path, rebuilt)."""
    dtsi = Path(carveouts) if carveouts is not None else CARVEOUTS_DTSI
    out = dtb_path(smp, mem_mb, carveouts)
    stamp = out.with_suffix(".dtb.stamp")
    qemu_version = _run_checked([QEMU, "--version"], "qemu version")
    key = hashlib.sha256("\0".join(
        [qemu_version, " ".join(MACHINE), str(smp), str(mem_mb),
         dtsi.read_text()]).encode()).hexdigest()
    if not force and out.exists() and stamp.exists() and stamp.read_text() == key:
        return out, False

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rmem-dtb-") as tmp:
        qemu_dtb = Path(tmp) / "virt.dtb"
        machine = MACHINE.copy()
        machine[1] += f",dumpdtb={qemu_dtb}"
        _run_checked([QEMU, *machine, "-smp", str(smp), "-m", str(mem_mb),
                      "-nographic"], "QEMU device-tree dump")
        dts = _run_checked(["dtc", "-q", "-I", "dtb", "-O", "dts", str(qemu_dtb)],
                           "dtc decompile")
        # dtc merges a second root node into the first, so the carve-outs can
        # simply follow QEMU's tree.
        soc_dts = Path(tmp) / "soc.dts"
        soc_dts.write_text(dts + "\n" + dtsi.read_text())
        _run_checked(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(out),
                      str(soc_dts)], "dtc compile")
    stamp.write_text(key)
    return out, True


def qemu_command(scenario, mode, smp, mem_mb, extra_append, carveouts=None):
    """The QEMU command line that boots `scenario` on the SoC."""
    if mode not in MODES:
        raise ValueError(f"unknown KVM mode {mode!r} (one of {', '.join(MODES)})")
    append = " ".join(part for part in [
        "console=ttyAMA0 panic=-1 quiet", f"rmem.scenario={scenario}",
        MODES[mode], extra_append] if part)
    return [QEMU, *MACHINE, "-smp", str(smp), "-m", str(mem_mb),
            "-nographic", "-no-reboot",
            "-kernel", str(OUT / "Image"),
            "-initrd", str(OUT / "l1.cpio"),
            "-dtb", str(dtb_path(smp, mem_mb, carveouts)),
            "-append", append]


def boot(scenario, mode="vhe", timeout=120, smp=DEFAULT_SMP,
         mem_mb=DEFAULT_MEM_MB, extra_append="", carveouts=None, on_line=None):
    """Boots the SoC into L1 scenario `scenario` with KVM in `mode`; kills
    QEMU after `timeout` seconds. `carveouts`: another .dtsi than the
    platform's (experiments). `on_line(line)`, if given, is called with
    each console line (without its end) the moment it is complete. Raises
    SocError if the images are missing."""
    for image in ("Image", "l1.cpio"):
        if not (OUT / image).exists():
            raise SocError(f"{OUT / image} is missing: run images/build")
    ensure_dtb(smp, mem_mb, carveouts=carveouts)
    cmd = qemu_command(scenario, mode, smp, mem_mb, extra_append, carveouts)

    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines = []

    def read_console():
        # Whole lines only: a UTF-8 character never straddles a newline.
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").replace("\r", "")
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))

    reader = threading.Thread(target=read_console, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    reader.join()
    proc.stdout.close()
    seconds = time.monotonic() - start

    console = "".join(lines)
    return SocResult(scenario=scenario, mode=mode, console=console,
                     markers=parse_markers(console), seconds=seconds,
                     exit_code=None if timed_out else proc.returncode,
                     timed_out=timed_out)


def boot_many(boots, workers=2):
    """Runs boot(**kwargs) for each kwargs in `boots`, `workers` at a time
    (one per host core: each QEMU keeps a core busy). Results keep the order
    of `boots`."""
    # Build the device trees first so that parallel boots do not race on them.
    for kwargs in boots:
        ensure_dtb(kwargs.get("smp", DEFAULT_SMP),
                   kwargs.get("mem_mb", DEFAULT_MEM_MB),
                   carveouts=kwargs.get("carveouts"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda kwargs: boot(**kwargs), boots))


def verdict(result):
    """One line saying how a boot ended."""
    if result.timed_out:
        outcome = "TIMEOUT"
    elif result.passed:
        outcome = "PASS"
    else:
        outcome = f"FAIL (RMEM-L1-DONE {result.value('RMEM-L1-DONE') or 'missing'})"
    return (f"soc: scenario {result.scenario}, mode {result.mode}: {outcome} "
            f"in {result.seconds:.1f} s, qemu exit {result.exit_code}")


def main():
    parser = argparse.ArgumentParser(
        description="Boot the rmem test SoC into an L1 scenario "
                    "(images/l1/scenarios/<scenario>.sh).")
    parser.add_argument("scenario")
    parser.add_argument("--mode", choices=list(MODES), default="vhe",
                        help="KVM's mode in L1 (default: vhe)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds before QEMU is killed (default: 120)")
    parser.add_argument("--append", default="",
                        help="extra L1 kernel arguments")
    parser.add_argument("--carveouts", default=None,
                        help="a .dtsi to use instead of "
                             "images/platform/rmem-carveouts.dtsi (experiments)")
    parser.add_argument("--stream", action="store_true",
                        help="print console lines as they come, leaving out "
                             "the kernels' own log lines (L1's and the guests'), "
                             "instead of the whole console at the end")
    args = parser.parse_args()

    def show(line):
        if not KERNEL_LOG.match(line):
            print(line, flush=True)

    try:
        result = boot(args.scenario, mode=args.mode, timeout=args.timeout,
                      extra_append=args.append, carveouts=args.carveouts,
                      on_line=show if args.stream else None)
    except SocError as error:
        print(f"soc: {error}", file=sys.stderr)
        return 2
    if not args.stream:
        print(result.console, end="" if result.console.endswith("\n") else "\n")
    print(verdict(result))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
