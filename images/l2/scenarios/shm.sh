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
#   RMEM-L2-SHM-NO-ACK <offset>  the back-end never set that mailbox word
# rmem.shmcase=probe breaks no rule: instead, rmem_l2_probe.ko checks that
# the read-write mailbox page behaves as Normal memory (lib/probe.sh) and
# the guest powers off normally.
param() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
hex() { printf '0x%x' "$1"; }
BASE=$(param rmem.shm)
CASE=$(param rmem.shmcase)
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
  exit $?
fi

echo "RMEM-L2-SHM-TRY $CASE"
case "$CASE" in
  rowrite) devmem "$BASE" 32 0 ;;                  # piece B is read-only
  hole) devmem "$(hex $((BASE + 0x300000)))" 32 ;; # nothing is mapped there
esac
echo "RMEM-L2-SHM-NOT-STOPPED"
