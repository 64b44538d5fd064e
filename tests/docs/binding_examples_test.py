#!/usr/bin/env python3
"""Every example in docs/bindings/*.yaml compiles with dtc and, when it uses
our bindings, is accepted by rmemd --check-firmware. An example with device
initiators (rmem,owner-vm) must also be listed by rmemd with each enabled
initiator's owner, and the same example without its first access-controllers
must be refused with RMEM_BAD_INITIATOR. TAP output.

usage: binding_examples_test.py DTC RMEMD BINDING.yaml...
"""
import json
import re
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


def check_verdict(label, rmemd, dtb, want, want_error=None):
    """rmemd --check-firmware gives `want` (and `want_error`) with the
    contract's exit status."""
    verdict = subprocess.run([rmemd, "--check-firmware", "--fdt", str(dtb)],
                             capture_output=True, text=True)
    try:
        got = json.loads(verdict.stdout)
    except json.JSONDecodeError:
        got = {}
    passed = (got.get("result") == want and verdict.returncode == (0 if want == "accept" else 1)
              and (want_error is None or got.get("error") == want_error))
    what = want if want_error is None else f"{want} {want_error}"
    return (f"{label}: rmemd --check-firmware says {what}", passed,
            verdict.stdout + verdict.stderr)


def check_listing(label, rmemd, dtb, example):
    """rmemd lists every enabled initiator of the example with its owner VM
    and no disabled one."""
    listing = subprocess.run([rmemd, "--fdt", str(dtb)], capture_output=True, text=True)
    nodes = re.findall(r"(\S+@[0-9a-f]+) \{([^{}]*rmem,owner-vm = \"([^\"]+)\"[^{}]*)\}",
                       example)
    missing = []
    for node, body, owner in nodes:
        disabled = 'status = "disabled"' in body
        shown = re.search(rf"/{re.escape(node)}\s+{re.escape(owner)}\s", listing.stdout)
        if bool(shown) == disabled:
            missing.append(f"{node} (owner {owner}, {'disabled' if disabled else 'enabled'}) "
                           f"{'listed' if shown else 'not listed'}")
    return (f"{label}: rmemd lists its {len(nodes)} initiator nodes' owners (disabled ones not)",
            listing.returncode == 0 and bool(nodes) and not missing,
            "\n".join(missing) + "\n" + listing.stdout + listing.stderr)


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
                if compiled.returncode != 0:
                    continue
                if "rmem,carveout" in example or "rmem,owner-vm" in example:
                    checks.append(check_verdict(f"{name}: example {i}", rmemd, dtb, "accept"))
                if "rmem,owner-vm" in example:
                    checks.append(check_listing(f"{name}: example {i}", rmemd, dtb, example))
                    broken = dts.with_name(dts.stem + ".broken.dts")
                    broken.write_text("/dts-v1/;\n" + re.sub(r"access-controllers = <[^>]*>;", "",
                                                             example, count=1))
                    broken_dtb = broken.with_suffix(".dtb")
                    subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", str(broken_dtb),
                                    str(broken)], check=True)
                    checks.append(check_verdict(
                        f"{name}: example {i} without its first access-controllers", rmemd,
                        broken_dtb, "reject", "RMEM_BAD_INITIATOR"))
    print(f"1..{len(checks)}")
    for n, (description, passed, details) in enumerate(checks, 1):
        print(f"{'ok' if passed else 'not ok'} {n} - {description}")
        if not passed:
            for line in details.splitlines():
                print(f"# {line}")
    return 0 if all(passed for _, passed, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
