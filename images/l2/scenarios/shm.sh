# L2 scenario "shm": the guest side of the shared memory test (L1 scenario
# vmm_shm, back-end rmem-shmem-test-backend). The region's guest physical
# address comes as rmem.shm=<addr> (rmem-vmm places the first device's region
# 0 at 512 GiB, docs/vmm.md); the guest reaches it with busybox devmem
# through /dev/mem (no driver binds the test device). Markers:
#   RMEM-L2-SHM-READ <word>      region offset 0 (piece A, read-only)
#   RMEM-L2-SHM-REMAP <word>     region offset 0 after the back-end remapped it (piece B)
#   RMEM-L2-SHM-TRY <case>       about to break the rules (rmem.shmcase=rowrite|hole):
#                                rmem-vmm must stop the guest here
#   RMEM-L2-SHM-NOT-STOPPED      printed only if it did not
param() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
hex() { printf '0x%x' "$1"; }
BASE=$(param rmem.shm)
CASE=$(param rmem.shmcase)
MAILBOX=$((BASE + 0x100000))

echo "RMEM-L2-SHM-READ $(devmem "$BASE" 32)"
devmem "$(hex $((MAILBOX + 8)))" 32 0xfeedf00d   # word 2: proves the read-write piece
devmem "$(hex "$MAILBOX")" 32 1                   # word 0: please remap
for _ in $(seq 600); do
  [ "$(devmem "$(hex $((MAILBOX + 4)))" 32)" = "0x00000001" ] && break
  sleep 0.1
done
echo "RMEM-L2-SHM-REMAP $(devmem "$BASE" 32)"
# Word 3: the back-end finished its script (and benchmark) before we break rules.
for _ in $(seq 600); do
  [ "$(devmem "$(hex $((MAILBOX + 12)))" 32)" = "0x00000001" ] && break
  sleep 0.1
done

echo "RMEM-L2-SHM-TRY $CASE"
case "$CASE" in
  rowrite) devmem "$BASE" 32 0 ;;                  # piece B is read-only
  hole) devmem "$(hex $((BASE + 0x300000)))" 32 ;; # nothing is mapped there
esac
echo "RMEM-L2-SHM-NOT-STOPPED"
