#!/usr/bin/env python3
"""The guest driver (guest_driver/virtio_rmem, /dev/rmem, rmemtool) end to
end: an L2 guest under rmem-vmm gets the virtio-rmem device from the TEST
ONLY back-end rmem-device-test-backend (the real device model over a broker
on memfd carve-outs; buffers mapped into the guest's shared memory region
with SHMEM_MAP; a scripted peer VM inside it), in VHE and protected (pKVM)
mode, in parallel. The guest receives, checks and loses (revocation) a
peer's buffer, writes one the peer then reads, shares, lends and donates
its own buffers to the peer (which checks their bytes), keeps device-only
buffers unmappable, sends malformed requests, survives the device being
unbound under a live mapping, binds again, survives the back-end being
killed under a live mapping (DEVICE_NEEDS_RESET) and unloads. See
images/l1/scenarios/rmem_driver.sh and images/l2/scenarios/rmem.sh. TAP
output.
"""

import sys

import tap
from tap import soc

MODES = ["vhe", "protected"]
TIMEOUT = 420
PHASES = ["receive", "own", "bad", "unbind", "rebind", "broken"]


def tool(result, verb):
    """The rest of every 'RMEM-L2-TOOL <verb> ...' line."""
    return [v.split(" ", 1)[1] if " " in v else "" for v in result.values("RMEM-L2-TOOL")
            if v.split(" ", 1)[0] == verb]


def has(lines, *parts):
    return any(all(p in line for p in parts) for line in lines)


def driver_checks(result, mode):
    phases = dict(v.split(" rc=") for v in result.values("RMEM-L2-RMEM-PHASE") if " rc=" in v)
    expects = tool(result, "expect")
    peer_read = result.values("RMEM-BACKEND-PEER-READ")
    touches = tool(result, "touch")
    checks = [
        ("KVM mode", result.value("RMEM-L1-KVMMODE") == mode,
         [f"RMEM-L1-KVMMODE {result.value('RMEM-L1-KVMMODE')}"]),
        ("the driver binds: /dev/rmem appears", result.value("RMEM-L2-RMEM-PROBE") == "dev=yes",
         [f"RMEM-L2-RMEM-PROBE {result.value('RMEM-L2-RMEM-PROBE')}"]),
        ("INFO, GET_HEAP, GET_PEER through the driver",
         has(tool(result, "info"), "vm=1 heaps=2 peers=1 max_receivers=4", "features=0x3",
             "shm=0x4000000 broken=0")
         and has(tool(result, "heap"), "name=secure-video", "flags=0x7 rights=rwm")
         and has(tool(result, "heap"), "name=device-only", "flags=0x2 rights=rw")
         and has(tool(result, "peer"), "vm=2 name=peer"),
         [f"RMEM-L2-TOOL {v}" for v in result.values("RMEM-L2-TOOL")
          if v.split(" ")[0] in ("info", "heap", "peer")][:4]),
    ]
    for phase in PHASES:
        checks.append((f"rmemtool phase '{phase}' succeeds", phases.get(phase) == "0",
                       [f"RMEM-L2-RMEM-PHASE {phase} rc={phases.get(phase)}"]))
    checks += [
        ("every expected outcome was seen", expects != [] and
         all(e.endswith("verdict=ok") for e in expects),
         [f"expect {e}" for e in expects if not e.endswith("verdict=ok")]),
        ("the peer's bytes reach the guest (read-only share, 0xc3)",
         has(tool(result, "check"), "name=p pattern=0xc3 mismatches=0 verdict=ok"),
         tool(result, "check")[:2]),
        ("a read-only buffer cannot be written (mmap and mprotect refused)",
         has(tool(result, "try-write"), "name=p mmap_rw=EACCES mprotect=EACCES",
             "verdict=refused"), tool(result, "try-write")),
        ("REVOKED zaps the guest's mapping: the next access is SIGBUS",
         has(touches, "name=p result=ok value=0xc3") and
         has(touches, "name=p result=sigbus"), touches),
        ("the guest's write reaches the peer (0x3c, read-write share)",
         result.value("RMEM-BACKEND-PEER-SAW") == "2 first=0x3c uniform=yes",
         [f"RMEM-BACKEND-PEER-SAW {result.value('RMEM-BACKEND-PEER-SAW')}"]),
        ("the peer reads what the guest shared, lent and donated (zeroed on ALLOC)",
         peer_read[:4] == ["share size=0x10000 first=0x5a uniform=yes",
                           "lend size=0x10000 first=0x11 uniform=yes",
                           "donate size=0x4000 first=0x00 uniform=yes",
                           "share size=0x2000 device-only"],
         [f"RMEM-BACKEND-PEER-READ {v}" for v in peer_read]),
        ("LEND zaps the owner's mapping; RECLAIM leaves it without an offset",
         has(touches, "name=l result=sigbus") and
         has(tool(result, "bufinfo"), "name=l", "state=no-offset") and
         has(tool(result, "try-mmap"), "name=l result=ENXIO"),
         [f"touch {t}" for t in touches if "name=l" in t]),
        ("a DONATED event makes the donor's buffer gone",
         has(tool(result, "bufinfo"), "name=g", "state=gone"), []),
        ("a device-only buffer cannot be mapped", has(tool(result, "try-mmap"),
                                                      "name=d result=EACCES"),
         tool(result, "try-mmap")),
        ("malformed requests get the statuses the spec requires",
         has(tool(result, "bad-done"), "cases=20 bad=0"),
         [v for v in tool(result, "bad") if "verdict=bad" in v] +
         [f"bad-done {v}" for v in tool(result, "bad-done")]),
        ("unbinding the device zaps live mappings and fails later requests",
         result.value("RMEM-L2-RMEM-UNBIND") == "dev=gone" and
         has(touches, "name=u result=sigbus"),
         [f"RMEM-L2-RMEM-UNBIND {result.value('RMEM-L2-RMEM-UNBIND')}"]),
        ("the driver binds again after an unbind",
         result.value("RMEM-L2-RMEM-REBIND") == "dev=yes", []),
        ("a device that needs a reset is broken: mappings zapped, requests fail",
         result.has("RMEM-L1-RMEM-BACKEND-KILLED") and has(touches, "name=k result=sigbus") and
         has(tool(result, "info"), "broken=1"),
         [f"touch {t}" for t in touches if "name=k" in t] +
         [f"info {v}" for v in tool(result, "info") if "broken=1" in v]),
        ("rmmod with the device bound leaves nothing, no kernel warning",
         result.value("RMEM-L2-RMEMMOD") == "unload=ok gone=yes warnings=0",
         [f"RMEM-L2-RMEMMOD {result.value('RMEM-L2-RMEMMOD')}"]),
        ("the guest never touched the region outside its buffers (exit 0, not 5)",
         result.value("RMEM-L1-VMM-EXIT") == "0",
         [f"RMEM-L1-VMM-EXIT {result.value('RMEM-L1-VMM-EXIT')}"]),
        ("the device saw no malformed chain; the back-end ran until killed",
         result.values("RMEM-BACKEND-STATS") != [] and
         all("bad_chains=0" in v for v in result.values("RMEM-BACKEND-STATS")) and
         result.value("RMEM-L1-BACKEND-EXIT") == "rmem-backend 137",
         [f"RMEM-BACKEND-STATS {v}" for v in result.values("RMEM-BACKEND-STATS")] +
         [f"RMEM-L1-BACKEND-EXIT {result.value('RMEM-L1-BACKEND-EXIT')}"]),
        ("scenario succeeded", result.passed, [soc.verdict(result)]),
    ]
    return checks


def main():
    return tap.run(
        [(mode, {"scenario": "rmem_driver", "mode": mode, "timeout": TIMEOUT}) for mode in MODES],
        lambda result, kwargs: driver_checks(result, kwargs["mode"]),
        lambda result: [f"SoC run {result.seconds:.1f} s, L2 guest (VMM start to exit) "
                        f"{result.value('RMEM-L1-VMM-SECONDS')} s"])


if __name__ == "__main__":
    sys.exit(main())
