# L1 scenario "vmm_shm": rmem-vmm's VIRTIO shared memory region, driven by
# our test back-end (rmem-shmem-test-backend, TEST ONLY) over vhost-user
# SHMEM_MAP/UNMAP, seen by the L2 guest (scenario "shm"). Two guests, one per
# way of breaking the rules; each also checks the reads, the read-write
# piece and the remap first:
#   rowrite: a write to a read-only piece     -> rmem-vmm stops the guest, exit 5
#   hole:    a read of an unmapped offset     -> rmem-vmm stops the guest, exit 5
# For each case (in this order):
#   RMEM-BACKEND-...                     the back-end's markers (its script)
#   RMEM-L1-SHM-CASE <case>
#   RMEM-L1-VMM-EXIT <rc>, RMEM-L1-VMM-SECONDS <s>
#   RMEM-L1-SHM-VIOLATION <case> <rmem-vmm's report>
# The first case also runs the map/unmap latency benchmark (--bench 100);
# before the guests, rmem-memslot-bench prints the floor (RMEM-BENCH lines).
. /scenarios/lib/vhost_user.sh
SOCK=/tmp/shm.sock
BASE=0x8000000000
status=0

rmem-memslot-bench 300 || status=1

for case in rowrite hole; do
  bench=""
  [ $case = rowrite ] && bench="--bench 100"
  # shellcheck disable=SC2086
  start_backend shmem-backend $SOCK rmem-shmem-test-backend --socket $SOCK $bench || exit 1
  echo "RMEM-L1-SHM-CASE $case"
  run_guest shm "rmem.shm=$BASE rmem.shmcase=$case" "vhost-user,socket=$SOCK,type=65534"
  [ $? = 5 ] || status=1
  echo "RMEM-L1-SHM-VIOLATION $case $(sed -n 's/.*isolation violation: //p' /tmp/vmm.err | head -n 1)"
  stop_backend shmem-backend
  grep '^RMEM-BACKEND-' /tmp/shmem-backend.log
done
exit $status
