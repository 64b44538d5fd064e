# L1 scenario "vmm_shm": rmem-vmm's VIRTIO shared memory region, driven by
# our test back-end (rmem-shmem-test-backend, TEST ONLY) over vhost-user
# SHMEM_MAP/UNMAP, seen by the L2 guest (scenario "shm"). Two guests; each
# first checks the reads, the read-write piece and the remap:
#   abort: rmem-vmm's default policy. The guest breaks the rules four times
#          (writes to a read-only piece and reads of an unmapped offset, with
#          and without an instruction syndrome); each gets an external abort
#          and the guest goes on, checks that memory did not change, reads
#          the once-unmapped offset after the back-end mapped it (--late-map)
#          and powers off: exit 5 (powered off after violations)
#   stop:  --on-violation stop: the first write to a read-only piece stops
#          the guest, exit 5
# For each case (in this order):
#   RMEM-BACKEND-...                     the back-end's markers (its script)
#   RMEM-L1-SHM-CASE <case>
#   RMEM-L1-VMM-EXIT <rc>, RMEM-L1-VMM-SECONDS <s>
#   RMEM-L1-SHM-VIOLATION <case> <rmem-vmm's report>   one per report line
#   RMEM-L1-SHM-VIOLATIONS <case> <rmem-vmm's summary>  "<n> (<logged> logged)"
#   RMEM-L1-SHM-UNDECODED <case> <report>  accesses KVM could not decode outside
#                                        the region (no violation, aborted too)
#   RMEM-L1-SHM-STOPPED <case> <rmem-vmm's "guest ..." line, or "no">
# and at the end, what L1's kernel logged meanwhile (a KVM WARN, say):
#   RMEM-L1-KERNEL-WARNINGS <n>, then each such line as RMEM-L1-KERNEL-WARNING <line>
# The first case also runs the map/unmap latency benchmark (--bench 100);
# before the guests, rmem-memslot-bench prints the floor (RMEM-BENCH lines).
. /scenarios/lib/vhost_user.sh
. /scenarios/lib/kernel_warnings.sh
SOCK=/tmp/shm.sock
BASE=0x8000000000
status=0
kernel_warnings_mark

rmem-memslot-bench 300 || status=1

for case in abort stop; do
  backend_options="--bench 100 --late-map"
  VMM_OPTIONS=""
  if [ $case = stop ]; then
    backend_options=""
    VMM_OPTIONS="--on-violation stop"
  fi
  # shellcheck disable=SC2086
  start_backend shmem-backend $SOCK rmem-shmem-test-backend --socket $SOCK $backend_options \
    || exit 1
  echo "RMEM-L1-SHM-CASE $case"
  run_guest shm "rmem.shm=$BASE rmem.shmcase=$case" "vhost-user,socket=$SOCK,type=65534"
  [ $? = 5 ] || status=1
  sed -n "s/^rmem-vmm: vCPU [0-9]*: isolation violation: /RMEM-L1-SHM-VIOLATION $case /p" \
    /tmp/vmm.err
  sed -n "s/^rmem-vmm: vCPU [0-9]*: guest \(.* could not decode .*\)/RMEM-L1-SHM-UNDECODED $case \1/p" \
    /tmp/vmm.err
  echo "RMEM-L1-SHM-VIOLATIONS $case $(sed -n 's/^rmem-vmm: isolation violations: //p' /tmp/vmm.err)"
  echo "RMEM-L1-SHM-STOPPED $case $(sed -n 's/^rmem-vmm: guest //p' /tmp/vmm.err | grep . || echo no)"
  stop_backend shmem-backend
  grep '^RMEM-BACKEND-' /tmp/shmem-backend.log
done

# KVM WARNs (a pending exception meeting a completed MMIO, say) and other
# kernel complaints while the guests ran.
kernel_warnings_report || status=1
exit $status
