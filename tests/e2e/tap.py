"""What every end-to-end test shares: finding the SoC images and printing
TAP (one line per check, details as '# ' lines, the console tail of a failed
boot). A missing image is a failure, never a skip."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images"))
import soc  # noqa: E402


class Guest:
    """One L2 guest's markers in an L1 scenario's console, where each of its
    lines carries its name ("decrypt: RMEM-...")."""

    def __init__(self, result, name):
        prefix = f"{name}: "
        self.lines = [line[len(prefix):] for line in result.console.splitlines()
                      if line.startswith(prefix)]
        self.markers = soc.parse_markers("\n".join(self.lines))

    def values(self, name):
        return [rest for n, rest in self.markers if n == name]

    def value(self, name):
        values = self.values(name)
        return values[0] if values else None

    def tool(self, verb):
        """The rest of every 'RMEM-L2-TOOL <verb> ...' line."""
        return [v.split(" ", 1)[1] if " " in v else "" for v in self.values("RMEM-L2-TOOL")
                if v.split(" ", 1)[0] == verb]

    def fields(self, name):
        """The key=value fields of the last `name` marker line ({} if none)."""
        values = self.values(name)
        return dict(f.split("=", 1) for f in (values[-1].split() if values else [])
                    if "=" in f)


def images_missing():
    """Prints a failing TAP plan and returns True if the images are absent."""
    missing = [name for name in ("Image", "l1.cpio") if not (soc.OUT / name).exists()]
    if not missing:
        return False
    print("1..1")
    print("not ok 1 - SoC images present")
    print(f"# missing {', '.join(missing)} in {soc.OUT}: run images/build")
    return True


def kernel_warnings_check(result):
    """The check of what images/l1/scenarios/lib/kernel_warnings.sh reported:
    (description, passed, details)."""
    return ("L1's kernel logged no WARNING, BUG or oops",
            result.value("RMEM-L1-KERNEL-WARNINGS") == "0",
            [f"RMEM-L1-KERNEL-WARNINGS {result.value('RMEM-L1-KERNEL-WARNINGS')}",
             *result.values("RMEM-L1-KERNEL-WARNING")])


def report(checks, console_lines=30):
    """checks: [(description, passed, [detail lines], SocResult)]. Prints TAP,
    returns the process exit status. A failed check's details go to stderr
    too, and each boot with a failed check has its whole console there once:
    meson's --print-errorlogs shows only stderr, and a CI log must say why a
    check failed, not just that it did."""
    print(f"1..{len(checks)}")
    failed = 0
    failed_boots = []
    for number, (description, passed, details, result) in enumerate(checks, 1):
        print(f"{'ok' if passed else 'not ok'} {number} - {description}")
        for line in details:
            print(f"# {line}")
        if not passed:
            failed += 1
            print("# console tail:")
            for line in result.console.splitlines()[-console_lines:]:
                print(f"#   {line}")
            print(f"FAILED {number} - {description}", file=sys.stderr)
            for line in details:
                print(f"  {line}", file=sys.stderr)
            if all(result is not seen for seen in failed_boots):
                failed_boots.append(result)
    for result in failed_boots:
        print(f"--- console of the {result.scenario} boot ({result.mode}), "
              f"{result.seconds:.1f} s ---", file=sys.stderr)
        print(result.console, file=sys.stderr, end="" if result.console.endswith("\n") else "\n")
    return 1 if failed else 0


def run(boots, checks_for, summary_for=lambda result: [], boot_again_why=lambda result: None):
    """The whole of an end-to-end test: boots the SoCs in parallel, checks
    each and prints TAP, then each boot's summary lines as '# ' lines.
    boots: [(label, soc.boot keyword arguments)];
    checks_for(result, kwargs) -> [(description, passed, [details])];
    summary_for(result) -> [lines];
    boot_again_why(result) -> None, or why that SoC run says nothing about
    our code (e.g. a nested guest that never reached its init): that SoC is
    booted once more, saying so and why on a '# ' line, and checked on the
    second run only. Returns the exit status."""
    if images_missing():
        return 1
    results = soc.boot_many([kwargs for _, kwargs in boots])
    for i, ((label, kwargs), result) in enumerate(zip(boots, results)):
        why = boot_again_why(result)
        if why:
            print(f"# {label}: BOOTING AGAIN, the first run is not judged: {why}", flush=True)
            for line in result.console.splitlines()[-40:]:
                print(f"# {label} (first run): {line}")
            results[i] = soc.boot(**kwargs)
    all_checks = [(f"{label}: {description}", passed, details, result)
                  for (label, kwargs), result in zip(boots, results)
                  for description, passed, details in checks_for(result, kwargs)]
    status = report(all_checks)
    for (label, _), result in zip(boots, results):
        for line in summary_for(result):
            print(f"# {label}: {line}")
    return status
