"""What TEST ONLY rmem-l2-access (tests/e2e/l2/rmem_l2_access.c) prints
about its one access, for the tests whose guests run it (vmm_shm,
carveout_map): "ok 0x<value> ..." or "sigbus code=N addr=exact|0x... pc=...
regs=... esr=0x... [took_ms=N]"."""

# ESR_EL1 of a synchronous external abort on a data access from EL0.
ESR_EC_DABT_LOWER, ESR_FSC_EXTERNAL = 0x24, 0x10


def access_fields(line):
    """The first word ("ok", "sigbus", ...) and the key=value fields of a
    line; ("", {}) for none."""
    words = (line or "").split()
    return (words[:1] or [""])[0], dict(w.split("=", 1) for w in words[1:] if "=" in w)


def sigbus_fields(line):
    """The fields of a "sigbus ..." line, or {} for anything else."""
    kind, fields = access_fields(line)
    return fields if kind == "sigbus" else {}


def esr_is_external_data_abort(esr):
    """Whether ESR_EL1 (hex text; only its low 32 bits count) says a
    synchronous external abort on a data access from EL0."""
    try:
        value = int(esr, 16)
    except (TypeError, ValueError):
        return False
    return (value >> 26) & 0x3f == ESR_EC_DABT_LOWER and value & 0x3f == ESR_FSC_EXTERNAL
