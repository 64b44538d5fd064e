# L2 scenario "shm": the guest side of the shared memory test (L1 scenario
# vmm_shm, back-end rmem-shmem-test-backend). The region's guest physical
# address comes as rmem.shm=<addr> (rmem-vmm places the first device's region
# 0 at 512 GiB, docs/vmm.md); the guest reaches it through /dev/mem (no driver
# binds the test device): busybox devmem for the granted accesses,
# rmem-l2-access (tests/e2e/l2, TEST ONLY) for the forbidden ones, which
# reports the signal they got. Markers:
#   RMEM-L2-SHM-READ <word>      region offset 0 (piece A, read-only)
#   RMEM-L2-SHM-REMAP <word>     region offset 0 after the back-end remapped it (piece B)
#   RMEM-L2-SHM-NO-ACK <offset>  the back-end never set that mailbox word
# then, by rmem.shmcase:
#   abort: each forbidden access gets an external abort (SIGBUS here) and
#     the guest goes on; for each <access>
#       RMEM-L2-SHM-ABORT <access> <rmem-l2-access's line>
#     rowrite     str32 to read-only piece B at offset 0
#     hole        ldr32 of unmapped offset 0x300000
#     rowrite-stp stp64 to piece B at offset 0x10 (no instruction syndrome)
#     hole-ldp    ldp64 of unmapped offset 0x300010 (no instruction syndrome)
#     mmio-ldp    ldp64 at 0x0c000000: no device, no region (not a violation;
#                 an access KVM cannot decode, aborted all the same)
#     and what the memory holds afterwards:
#       RMEM-L2-SHM-AFTER rowrite <word at offset 0>
#       RMEM-L2-SHM-AFTER rowrite-stp <the 16 bytes at offset 0x10, ldp64>
#       RMEM-L2-SHM-LATE <word at 0x300000 once the back-end mapped piece A there>
#     then the guest powers off normally
#   stop: the same write to piece B, under rmem-vmm --on-violation stop:
#       RMEM-L2-SHM-TRY stop         about to write; rmem-vmm must stop the guest
#       RMEM-L2-SHM-NOT-STOPPED      printed only if it did not
# rmem.shmcase=probe breaks no rule: instead, rmem_l2_probe.ko checks that
# the read-write mailbox page behaves as Normal memory (lib/probe.sh).
# With rmem.shmrevoke=live too (back-end --carveout --revoke-live, its step
# 8) the back-end then revokes a piece the guest has mapped, and unmaps it
# only two seconds after the guest's next load from it:
#   RMEM-L2-SHM-REVOKE before <rmem-l2-access's line>  ldr32 of the fresh
#       piece at offset 0x200000 before the revoke (it must read piece A)
#   RMEM-L2-SHM-REVOKE after <rmem-l2-access's line>   the same ldr32 right
#       after the back-end said "revoked" (--after/--signal): the revoke
#       alone must take the page from the guest, so no data, but an external
#       abort (SIGBUS) once the unmap made it a violation; took_ms= says how
#       long it was held
# The guest powers off normally (rmem-vmm then exits 5: a violation).
param() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
hex() { printf '0x%x' "$1"; }
BASE=$(param rmem.shm)
CASE=$(param rmem.shmcase)
REVOKE=$(param rmem.shmrevoke)
MAILBOX=$((BASE + 0x100000))

echo "RMEM-L2-SHM-READ $(devmem "$BASE" 32)"
devmem "$(hex $((MAILBOX + 8)))" 32 0xfeedf00d   # word 2: proves the read-write piece
# wait_word OFFSET: waits (up to 90 s of uptime) for the back-end to set
# mailbox word OFFSET to 1; says so if it never does.
wait_word() {
  deadline=$(($(cut -d. -f1 /proc/uptime) + 90))
  while [ "$(devmem "$(hex $((MAILBOX + $1)))" 32)" != "0x00000001" ]; do
    if [ "$(cut -d. -f1 /proc/uptime)" -ge $deadline ]; then
      echo "RMEM-L2-SHM-NO-ACK $1"
      return
    fi
    sleep 0.1
  done
}
devmem "$(hex "$MAILBOX")" 32 1                   # word 0: please remap
wait_word 4
echo "RMEM-L2-SHM-REMAP $(devmem "$BASE" 32)"
wait_word 12  # word 3: the back-end's script (and benchmark) is done

if [ "$CASE" = probe ]; then
  . /scenarios/lib/probe.sh
  probe_normal_memory "$(hex "$MAILBOX")"
  rc=$?
  if [ "$REVOKE" = live ]; then
    live=$(hex $((BASE + 0x200000)))
    devmem "$(hex $((MAILBOX + 24)))" 32 1         # word 6: map a piece to revoke
    wait_word 28                                   # word 7: mapped
    echo "RMEM-L2-SHM-REVOKE before $(rmem-l2-access ldr32 "$live")"
    devmem "$(hex $((MAILBOX + 32)))" 32 1         # word 8: read; revoke it now
    # Spins until word 9 (revoked), sets word 10 (loading), loads at once.
    echo "RMEM-L2-SHM-REVOKE after $(rmem-l2-access ldr32 "$live" \
      --after "$(hex $((MAILBOX + 36)))" --signal "$(hex $((MAILBOX + 40)))")"
    wait_word 44                                   # word 11: unmapped
  fi
  exit $rc
fi

if [ "$CASE" = stop ]; then
  echo "RMEM-L2-SHM-TRY stop"
  rmem-l2-access str32 "$BASE" 0                 # piece B is read-only
  echo "RMEM-L2-SHM-NOT-STOPPED"
  exit 1
fi

# access NAME OP OFFSET [VALUE]: one forbidden access by rmem-l2-access,
# and what it got, as RMEM-L2-SHM-ABORT NAME ...
access() {
  name=$1 op=$2 offset=$3
  shift 3
  echo "RMEM-L2-SHM-ABORT $name $(rmem-l2-access "$op" "$(hex $((BASE + offset)))" "$@")"
}
access rowrite str32 0 0
echo "RMEM-L2-SHM-AFTER rowrite $(devmem "$BASE" 32)"
access hole ldr32 0x300000
access rowrite-stp stp64 0x10 0
echo "RMEM-L2-SHM-AFTER rowrite-stp $(rmem-l2-access ldp64 "$(hex $((BASE + 0x10)))")"
access hole-ldp ldp64 0x300010
echo "RMEM-L2-SHM-ABORT mmio-ldp $(rmem-l2-access ldp64 0x0c000000)"
devmem "$(hex $((MAILBOX + 16)))" 32 1           # word 4: please map the hole
wait_word 20
echo "RMEM-L2-SHM-LATE $(devmem "$(hex $((BASE + 0x300000)))" 32)"
