"""TAP for the host-side Python tests (rmemd_serve, rmemd_unit): checks are
collected as they run and printed at the end, one line each; the details
of a failed check follow as '# ' lines (on stderr too, where meson shows
them), and a skipped check says why on stderr as well, so that a skip is
never silent."""
import sys


class Checks:
    def __init__(self):
        self.results = []  # (name, ok: True / False / None for skipped, detail)

    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))

    def skip(self, name, why):
        self.results.append((name, None, why))

    def report(self):
        """Prints the TAP; returns the exit status (1 if any check failed)."""
        print(f"1..{len(self.results)}")
        failed = 0
        for i, (name, ok, detail) in enumerate(self.results, 1):
            if ok is None:
                print(f"ok {i} - {name} # SKIP {detail}")
                print(f"# SKIPPED: {name}: {detail}", file=sys.stderr)
                continue
            print(f"{'ok' if ok else 'not ok'} {i} - {name}")
            if not ok:
                failed += 1
                for line in str(detail).splitlines()[:40]:
                    print(f"# {line}")
                    print(f"# {line}", file=sys.stderr)
        return 1 if failed else 0
