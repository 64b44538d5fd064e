#!/usr/bin/env python3
"""virtio-rmem end to end with the real broker: in L1 of the test SoC, rmemd
(docs/rmemd.example.toml, the SoC's own device tree, carve-out pages through
host_driver/rmem_carveout) serves three L2 guests at once under rmem-vmm,
each with the guest driver (guest_driver/virtio_rmem) driven by rmemtool:

- decrypt (VM 1) allocates from secure-video, writes a pattern and shares it
  read-only with display, which reads it through its dma-buf and cannot
  write it; infotainment (VM 3), not named, holds the handle and cannot
  retrieve it; decrypt lends a buffer (its own mapping is gone meanwhile)
  and reclaims it intact after display gives it back;
- infotainment is refused secure-video and hits its quota, shares a
  read-write buffer display writes into, revokes one display has mapped
  (its mapping is gone before the REVOKED event), donates one; then its VMM
  is killed while display maps its buffer: display is told (peer-gone),
  loses the mapping, the pool is whole again and a new buffer is zeroed;
- display's VMM is killed while it maps decrypt's buffer: decrypt hears
  RELINQUISHED (peer-gone) and reclaims it intact;
- decrypt's malformed requests get the spec's statuses and it survives an
  unbind under a live mapping; when rmemd itself is killed under its live
  mapping, its access to the buffer waits in rmem-vmm until rmemd, started
  again from its state, has been reconnected to and has mapped the buffer
  again: the access completes, the bytes are intact, requests work on, and
  the driver unloads cleanly;
- no kernel warning in L1 or any L2.

VHE and protected (pKVM) mode, in parallel. See images/l1/scenarios/
rmem_driver.sh and images/l2/scenarios/rmem.sh. TAP output.
"""

import re
import sys

import tap
from tap import Guest, soc

MODES = ["vhe", "protected"]
TIMEOUT = 1200
GUESTS = ["decrypt", "display", "infotainment"]
PHASES = {
    "decrypt": ["share", "lend", "own", "bad", "unbind", "rebind", "lost", "restart"],
    "display": ["receive", "borrow"],  # "held" never ends: its VMM is killed
    "infotainment": ["stranger", "give"],  # "doomed" never ends: its VMM is killed
}


def has(lines, *parts):
    return any(all(p in line for p in parts) for line in lines)



RESTORED = re.compile(r"state: /run/rmemd/state.db: (\d+) buffers")
REMAPPED = re.compile(r"vm 1: its VMM is back: (\d+) restored mappings made again")
FIREWALL_RUN = re.compile(r"(\S+) \[(0x[0-9a-f]+), (0x[0-9a-f]+)\): (.*)$")


def firewall_state(rmemd, n):
    """rmemd's N-th SIGUSR1 report: (controller, size, {id: access}) per run."""
    runs, inside = [], False
    for line in rmemd:
        if f"firewall state #{n}," in line:
            inside = True
        elif f"firewall state #{n} end" in line:
            return runs
        elif inside:
            m = FIREWALL_RUN.search(line)
            if m:
                who = dict(w.split(" ", 1) for w in m.group(4).split(", "))
                runs.append((m.group(1), int(m.group(3), 16) - int(m.group(2), 16), who))
    return None


def driver_checks(result, mode):
    g = {name: Guest(result, name) for name in GUESTS}
    dec, dis, inf = g["decrypt"], g["display"], g["infotainment"]
    exits = dict(v.split() for v in result.values("RMEM-L1-VMM-EXIT") if len(v.split()) == 2)
    rmemd = result.values("RMEM-L1-RMEMD")
    rmemd2 = result.values("RMEM-L1-RMEMD2")
    audit = result.values("RMEM-L1-AUDIT")
    dec_vmm = [line[len("decrypt: l1: rmem-vmm: "):] for line in result.console.splitlines()
               if line.startswith("decrypt: l1: rmem-vmm: ")]
    ui_heap = [h for h in dis.tool("heap") if "name=secure-ui" in h]
    handle = result.value("RMEM-L1-HANDLE")
    checks = [
        ("KVM mode", result.value("RMEM-L1-KVMMODE") == mode,
         [f"RMEM-L1-KVMMODE {result.value('RMEM-L1-KVMMODE')}"]),
        ("rmemd serves the example configuration over the SoC's own carve-outs",
         result.value("RMEM-L1-RMEMD-UP") == "yes" and
         all(has(rmemd, f"serving {name} ") for name in GUESTS) and
         has(rmemd, "carve-out memory", "/dev/rmem-carveout"),
         [f"RMEM-L1-RMEMD {v}" for v in rmemd[:12]]),
    ]
    for name in GUESTS:
        checks.append((f"{name}: the driver binds, /dev/rmem appears",
                       g[name].value("RMEM-L2-RMEM-PROBE") == "dev=yes",
                       [f"RMEM-L2-RMEM-PROBE {g[name].value('RMEM-L2-RMEM-PROBE')}"]))
        phases = dict(v.split(" rc=") for v in g[name].values("RMEM-L2-RMEM-PHASE")
                      if " rc=" in v)
        for phase in PHASES[name]:
            checks.append((f"{name}: rmemtool phase '{phase}' succeeds",
                           phases.get(phase) == "0",
                           [f"RMEM-L2-RMEM-PHASE {phase} rc={phases.get(phase)}"]))
        expects = g[name].tool("expect")
        checks.append((f"{name}: every expected outcome was seen",
                       expects != [] and all(e.endswith("verdict=ok") for e in expects),
                       [f"expect {e}" for e in expects if not e.endswith("verdict=ok")]))
    checks += [
        ("the device says who the guest is: VM ids, heaps, peers, region",
         has(dec.tool("info"), "vm=1 heaps=2 peers=2 max_receivers=8", "shm=0x10000000") and
         has(dis.tool("info"), "vm=2 heaps=2 peers=2") and
         has(dec.tool("heap"), "name=secure-video", "rights=rwm") and
         has(dis.tool("heap"), "name=secure-video", "rights=rm") and
         has(dec.tool("peer"), "vm=2 name=display"),
         [f"decrypt info {v}" for v in dec.tool("info")[:1]] +
         [f"decrypt heap {v}" for v in dec.tool("heap")] +
         [f"display heap {v}" for v in dis.tool("heap")]),
        # The read-only share.
        ("decrypt's bytes reach display (read-only share, 0xc3)",
         has(dis.tool("check"), "name=p pattern=0xc3 mismatches=0 verdict=ok"),
         dis.tool("check")[:2]),
        ("display cannot write the read-only buffer (mmap and mprotect refused)",
         has(dis.tool("try-write"), "name=p mmap_rw=EACCES mprotect=EACCES", "verdict=refused"),
         dis.tool("try-write")),
        ("a rights ceiling holds: decrypt may not share secure-video writable to display",
         has(dec.tool("expect"), "EACCES", "share a 2:rwm") or
         has(dec.tool("share"), "name=a", "error=EACCES"),
         dec.tool("share")),
        ("infotainment, not named, cannot retrieve with the leaked handle",
         handle not in (None, "none") and
         has(inf.tool("retrieve"), f"handle={handle}", "error=ENOENT"),
         [f"RMEM-L1-HANDLE {handle}"] + inf.tool("retrieve")),
        ("the buffer comes back to decrypt intact after display relinquished it",
         len([c for c in dec.tool("check") if "name=a pattern=0xc3 mismatches=0" in c]) == 2,
         dec.tool("check")[:3]),
        # Lend.
        ("LEND takes decrypt's own mapping away; display reads the loan; RECLAIM gives it back",
         has(dec.tool("touch"), "name=l result=sigbus") and
         has(dis.tool("check"), "name=l pattern=0x11 mismatches=0 verdict=ok") and
         has(dec.tool("check"), "name=l pattern=0x11 mismatches=0 verdict=ok"),
         dec.tool("touch") + [c for c in dis.tool("check") if "name=l" in c]),
        # infotainment's heap, policy and quotas.
        ("infotainment is refused secure-video and hits its secure-ui quota",
         has(inf.tool("alloc"), "error=EACCES") and has(inf.tool("alloc"), "error=ENOSPC"),
         inf.tool("alloc")),
        ("display's write reaches infotainment (read-write share, 0x3c)",
         has(inf.tool("check"), "name=u pattern=0x3c mismatches=0 verdict=ok"),
         inf.tool("check")),
        ("a revocation zaps display's mapping before it hears REVOKED",
         has(dis.tool("touch"), "name=v result=ok") and
         has(dis.tool("touch"), "name=v result=sigbus") and
         has(dis.tool("event"), "type=REVOKED reason=request"),
         [t for t in dis.tool("touch") if "name=v" in t]),
        ("a donation: display gets a zeroed buffer it owns; infotainment's is gone",
         has(dis.tool("check"), "name=g pattern=0x00 mismatches=0 verdict=ok") and
         has(inf.tool("bufinfo"), "name=g", "state=gone"),
         [c for c in dis.tool("check") if "name=g" in c] + inf.tool("bufinfo")),
        # A VMM killed while its buffer is borrowed.
        ("infotainment's VMM killed while display maps its buffer",
         result.has("RMEM-L1-KILLED-VMM") and exits.get("infotainment") == "137",
         [f"RMEM-L1-VMM-EXIT {v}" for v in result.values("RMEM-L1-VMM-EXIT")]),
        ("rmemd notices: it makes sure the dead VMM maps nothing before scrubbing",
         has(rmemd, "vm 3", "killing its VMM"), rmemd[-12:]),
        ("display is told (REVOKED, peer-gone) and its mapping is gone",
         has(dis.tool("event"), "type=REVOKED reason=peer-gone") and
         has(dis.tool("touch"), "name=w result=ok") and
         has(dis.tool("touch"), "name=w result=sigbus"),
         [t for t in dis.tool("touch") if "name=w" in t] +
         [e for e in dis.tool("event") if "REVOKED" in e]),
        ("the dead VM's buffers are back in the pool (secure-ui wholly free again)",
         len(ui_heap) >= 2 and "free=0x1000000 " in ui_heap[1],
         [f"display heap {h}" for h in ui_heap]),
        ("the next buffer from that pool is zeroed",
         has(dis.tool("check"), "name=z pattern=0x00 mismatches=0 verdict=ok"),
         [c for c in dis.tool("check") if "name=z" in c]),
        ("a borrower's VMM killed: the owner hears RELINQUISHED (peer-gone), reclaims intact",
         result.has("RMEM-L1-KILLED-VMM") and exits.get("display") == "137" and
         has(dec.tool("event"), "type=RELINQUISHED reason=peer-gone") and
         has(dec.tool("check"), "name=f pattern=0x66 mismatches=0 verdict=ok") and
         has(rmemd, "vm 2", "killing its VMM"),
         [e for e in dec.tool("event") if "RELINQUISHED" in e] +
         [f"RMEM-L1-VMM-EXIT {v}" for v in result.values("RMEM-L1-VMM-EXIT")]),
        # decrypt's own checks.
        ("malformed requests get the statuses the spec requires",
         has(dec.tool("bad-done"), "cases=20 bad=0"),
         [v for v in dec.tool("bad") if "verdict=bad" in v] +
         [f"bad-done {v}" for v in dec.tool("bad-done")]),
        ("unbinding the device zaps live mappings; it binds again",
         dec.value("RMEM-L2-RMEM-UNBIND") == "dev=gone" and
         has(dec.tool("touch"), "name=u result=sigbus") and
         dec.value("RMEM-L2-RMEM-REBIND") == "dev=yes",
         [f"RMEM-L2-RMEM-UNBIND {dec.value('RMEM-L2-RMEM-UNBIND')}",
          f"RMEM-L2-RMEM-REBIND {dec.value('RMEM-L2-RMEM-REBIND')}"]),
        ("rmemd killed under decrypt's live mapping: rmem-vmm drops the mapping and "
         "reconnects; decrypt's access to the buffer waits for it",
         result.has("RMEM-L1-KILLED-RMEMD") and
         result.value("RMEM-L1-RMEMD-EXIT") == "137" and
         result.value("RMEM-L1-ACCESS-WAITED") == "yes" and
         has(dec_vmm, "disconnected; reconnecting") and
         has(dec_vmm, "reconnected after"),
         [f"RMEM-L1-RMEMD-EXIT {result.value('RMEM-L1-RMEMD-EXIT')}",
          f"RMEM-L1-ACCESS-WAITED {result.value('RMEM-L1-ACCESS-WAITED')}"] +
         [v for v in dec_vmm if "back-end" in v or "backend" in v]),
        ("rmemd started again from the killed one's state maps decrypt's buffer again; "
         "the waiting access completes, the bytes are intact, requests work on; "
         "exit 0 on SIGTERM",
         any(RESTORED.search(v) and int(RESTORED.search(v).group(1)) >= 1 for v in rmemd2) and
         any(REMAPPED.search(v) and int(REMAPPED.search(v).group(1)) >= 1 for v in rmemd2) and
         [t for t in dec.tool("touch") if "name=k" in t] ==
         ["name=k result=ok value=0x42"] * 2 and
         has(dec.tool("check"), "name=k", "verdict=ok") and
         has(dec.tool("check"), "name=n", "verdict=ok") and
         result.value("RMEM-L1-RMEMD2-EXIT") == "0",
         [f"RMEM-L1-RMEMD2 {v}" for v in rmemd2 if "state" in v or "vm 1" in v] +
         [t for t in dec.tool("touch") if "name=k" in t] +
         [t for t in dec.tool("check") if "name=k" in t or "name=n" in t] +
         [f"RMEM-L1-RMEMD2-EXIT {result.value('RMEM-L1-RMEMD2-EXIT')}"]),
        ("rmemctl audit in L1 shows the requests decrypt made after the restart",
         has(audit, "free") and has(audit, "alloc"),
         [f"RMEM-L1-AUDIT {v}" for v in audit]),
    ]
    # The bus firewalls (register-level models in rmemd; the SoC has none).
    ui_state, video_state = firewall_state(rmemd, 1), firewall_state(rmemd, 2)
    everything = (ui_state or []) + (video_state or [])
    checks += [
        ("rmemd programs a TZC-400 (secure-video) and a block firewall (secure-ui), as models",
         has(rmemd, "firewall@2a4a0000", "TZC-400 MODEL, guarding secure-video") and
         has(rmemd, "firewall@2a4b0000", "block-granular controller MODEL", "secure-ui") and
         has(rmemd, "NOT restricted"),
         [v for v in rmemd if "firewall" in v][:4]),
        ("display's controller (id 5) reads infotainment's 64 KiB buffer it retrieved, "
         "through the block firewall",
         ui_state is not None and
         any(c.endswith("firewall@2a4b0000") and size == 0x10000 and who == {"5": "read"}
             for c, size, who in ui_state),
         [f"firewall state #1: {r}" for r in (ui_state or ["none"])]),
        ("decrypt's decoder (id 4) writes, display's controller (id 5) reads decrypt's "
         "shared 1 MiB frame, through the TZC-400",
         video_state is not None and
         any(c.endswith("firewall@2a4a0000") and size == 0x100000 and
             who == {"4": "read+write", "5": "read"} for c, size, who in video_state),
         [f"firewall state #2: {r}" for r in (video_state or ["none"])]),
        ("nobody else reaches a carve-out page, and the display controller never writes",
         ui_state is not None and video_state is not None and
         all(set(who) <= {"4", "5"} and who.get("5", "read") == "read"
             for _, _, who in everything),
         [f"firewall run {r}" for r in everything]),
    ]
    checks += [
        ("decrypt: rmmod leaves nothing, no kernel warning",
         dec.value("RMEM-L2-RMEMMOD") == "unload=ok gone=yes warnings=0",
         [f"RMEM-L2-RMEMMOD {dec.value('RMEM-L2-RMEMMOD')}"]),
        ("decrypt: never touched its region outside its buffers (rmem-vmm exit 0)",
         exits.get("decrypt") == "0", [f"RMEM-L1-VMM-EXIT decrypt {exits.get('decrypt')}"]),
        ("no kernel warning in L1 (KVM, rmem_carveout)",
         result.value("RMEM-L1-DMESG-WARNINGS") == "0",
         [f"RMEM-L1-DMESG-WARNINGS {result.value('RMEM-L1-DMESG-WARNINGS')}"]),
        ("scenario succeeded", result.passed, [soc.verdict(result)]),
    ]
    return checks


def main():
    return tap.run(
        [(mode, {"scenario": "rmem_driver", "mode": mode, "timeout": TIMEOUT}) for mode in MODES],
        lambda result, kwargs: driver_checks(result, kwargs["mode"]),
        lambda result: [f"SoC run {result.seconds:.1f} s"])


if __name__ == "__main__":
    sys.exit(main())
