#!/usr/bin/env python3
"""Seeds for the vhost-user back-end's fuzzers (formats in each fuzzer's header).

make_vhost_user_seeds.py message OUT  a front-end's session: negotiation, a
                                      memory table (a memfd holding the input),
                                      ring 0 set up and kicked, config, stop
make_vhost_user_seeds.py chain OUT    a queue of 8 with one two-descriptor
                                      chain available
"""
import struct
import sys

NEED_REPLY = 1 << 3
FEATURES = (1 << 32) | (1 << 30) | 1
PROTOCOL = sum(1 << b for b in (0, 3, 5, 9, 10, 13, 22))
USER = 0x7F0000000000  # the memory region's front-end address (any value)


def message(request, payload=b"", flags=NEED_REPLY):
    return struct.pack("<III", request, 1 | flags, len(payload)) + payload


def records(msg, fds=0, memfd=False):
    """The fuzzer's chunk records for one message; fds go with its first chunk."""
    out = b""
    for i in range(0, len(msg), 64):
        part = msg[i:i + 64]
        fd_byte = (fds | (0x80 if memfd else 0)) if i == 0 else 0
        out += bytes([len(part) - 1, fd_byte]) + part
    return out


def message_seed():
    u64 = lambda v: struct.pack("<Q", v)
    state = lambda i, n: struct.pack("<II", i, n)
    s = bytes([3]) + u64(PROTOCOL)
    s += records(message(1, flags=0))  # GET_FEATURES
    s += records(message(15, flags=0))  # GET_PROTOCOL_FEATURES
    s += records(message(16, u64(PROTOCOL), flags=0))  # SET_PROTOCOL_FEATURES
    s += records(message(3))  # SET_OWNER
    s += records(message(17, flags=0))  # GET_QUEUE_NUM
    s += records(message(21), fds=1)  # SET_BACKEND_REQ_FD
    s += records(message(44, flags=0))  # GET_SHMEM_CONFIG
    s += records(message(2, u64(FEATURES)))  # SET_FEATURES
    table = struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0x40000000, 0x10000, USER, 0)
    s += records(message(5, table), fds=1, memfd=True)  # SET_MEM_TABLE
    s += records(message(8, state(0, 8)))  # SET_VRING_NUM
    addr = struct.pack("<IIQQQQ", 0, 0, USER, USER + 0x2000, USER + 0x1000, 0)
    s += records(message(9, addr))  # SET_VRING_ADDR
    s += records(message(10, state(0, 0)))  # SET_VRING_BASE
    s += records(message(13, u64(0)), fds=1)  # SET_VRING_CALL
    s += records(message(12, u64(0)), fds=1)  # SET_VRING_KICK (signalled: runs ring 0)
    s += records(message(18, state(0, 1)))  # SET_VRING_ENABLE
    s += records(message(24, struct.pack("<III", 0, 16, 0) + bytes(16), flags=0))  # GET_CONFIG
    s += records(message(25, struct.pack("<III", 8, 4, 0) + b"abcd"))  # SET_CONFIG
    s += records(message(11, state(0, 0), flags=0))  # GET_VRING_BASE
    s += records(message(34))  # RESET_DEVICE
    return s


def chain_seed():
    header = bytes([3, 0, 0, 0, 0])  # queue of 8, head 0, available index starts at 0
    memory = bytearray(0x3000 + 0x200)
    # Descriptor 0: 16 readable bytes at 0x10100, next 1; descriptor 1: 32 writable at 0x10200.
    struct.pack_into("<QIHH", memory, 0, 0x10100, 16, 1, 1)
    struct.pack_into("<QIHH", memory, 16, 0x10200, 32, 2, 0)
    # Available ring at 0x1000: flags 0, idx 1, ring[0] = 0.
    struct.pack_into("<HHH", memory, 0x1000, 0, 1, 0)
    memory[0x100:0x110] = b"a virtio request"
    return header + bytes(memory)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    data = message_seed() if kind == "message" else chain_seed()
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
