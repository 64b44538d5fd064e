#!/usr/bin/env python3
"""Wraps a device tree in a minimal valid Firmware Handoff transfer list
(v1 header, checksum flag set, one XFERLIST_FDT entry): a fuzzing seed.
usage: make_tl_seed.py FDT OUTPUT"""
import struct
import sys


def transfer_list(fdt):
    hdr_size = 0x18
    entry = struct.pack("<II", 1 | (8 << 24), len(fdt)) + fdt
    entry += b"\0" * (-len(entry) % 8)
    size = hdr_size + len(entry)
    header = struct.pack("<IBBBBIII", 0x4a0fb10b, 0, 1, hdr_size, 3, size, size, 1) + b"\0" * 4
    blob = bytearray(header + entry)
    blob[4] = (-sum(blob)) % 256
    return bytes(blob)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[2], "wb") as out:
        out.write(transfer_list(open(sys.argv[1], "rb").read()))
