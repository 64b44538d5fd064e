#!/usr/bin/env python3
"""Every example in docs/bindings/*.yaml compiles with dtc and, for the
carve-out binding, is accepted by rmemd --check-firmware. TAP output.

usage: binding_examples_test.py DTC RMEMD BINDING.yaml...
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def examples(yaml_text):
    """The '- |' blocks under the top-level 'examples:' key, dedented."""
    lines = yaml_text.splitlines()
    try:
        start = lines.index("examples:") + 1
    except ValueError:
        return []
    blocks, current = [], None
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break  # the next top-level key
        if line.strip() == "- |":
            current = []
            blocks.append(current)
        elif current is not None:
            current.append(line[4:])
    return ["\n".join(b) + "\n" for b in blocks]


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    dtc, rmemd, bindings = argv[1], argv[2], argv[3:]
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        for binding in bindings:
            name = Path(binding).name
            found = examples(Path(binding).read_text())
            checks.append((f"{name}: has an example", bool(found), ""))
            for i, example in enumerate(found):
                dts = Path(tmp) / f"{name}.{i}.dts"
                dtb = dts.with_suffix(".dtb")
                dts.write_text("/dts-v1/;\n" + example)
                compiled = subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", str(dtb),
                                           str(dts)], capture_output=True, text=True)
                checks.append((f"{name}: example {i} compiles with dtc",
                               compiled.returncode == 0, compiled.stderr))
                if compiled.returncode != 0 or "rmem,carveout" not in example:
                    continue
                verdict = subprocess.run([rmemd, "--check-firmware", "--fdt", str(dtb)],
                                         capture_output=True, text=True)
                try:
                    result = json.loads(verdict.stdout).get("result")
                except json.JSONDecodeError:
                    result = None
                checks.append((f"{name}: example {i} is accepted by rmemd --check-firmware",
                               verdict.returncode == 0 and result == "accept",
                               verdict.stdout + verdict.stderr))
    print(f"1..{len(checks)}")
    for n, (description, passed, details) in enumerate(checks, 1):
        print(f"{'ok' if passed else 'not ok'} {n} - {description}")
        if not passed:
            for line in details.splitlines():
                print(f"# {line}")
    return 0 if all(passed for _, passed, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
