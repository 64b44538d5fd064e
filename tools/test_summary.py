#!/usr/bin/env python3
"""Counts test cases in meson's JUnit logs and prints the summary line.

Every gtest case is one result (meson's gtest protocol records them); a
test binary that crashed before writing its cases counts as one failure.
A log that is missing counts as a failure too: a suite that did not run
must never look like a pass, and so does each --failed-step=NAME (a step
such as images/build that failed before its tests could run).
"""
import sys
import xml.etree.ElementTree as ET


def count(path):
    passed = failed = skipped = 0
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"rmem: no test results in {path}: {e}", file=sys.stderr)
        return 0, 1, 0
    for suite in root.iter("testsuite"):
        cases = list(suite.iter("testcase"))
        for case in cases:
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped


def main(args):
    steps = [a.split("=", 1)[1] for a in args if a.startswith("--failed-step=")]
    paths = [a for a in args if not a.startswith("--failed-step=")]
    totals = [0, 0, 0]
    for step in steps:
        print(f"rmem: {step} failed: its tests did not run", file=sys.stderr)
        totals[1] += 1
    for p in paths:
        for i, n in enumerate(count(p)):
            totals[i] += n
    if not paths:
        totals[1] += 1
        print("rmem: no test logs given", file=sys.stderr)
    passed, failed, skipped = totals
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
