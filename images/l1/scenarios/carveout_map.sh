# L1 scenario "carveout_map": host_driver/rmem_carveout on the SoC, and the
# memory type an L2 guest gets for carve-out pages.
#   1. insmod /lib/rmem/rmem_carveout.ko      RMEM-L1-CARVEOUT-INSMOD rc=<n>,
#      its kernel messages                    RMEM-L1-CARVEOUT-DMESG <line>
#   2. the device node and its listing         RMEM-L1-CARVEOUT-DEV <mode> <uid>
#                                              RMEM-L1-CARVEOUT-LIST <base> <size> <name>
#   3. rmem-carveout-check mmap: maps, patterns, refusals, read-only, the
#      capability (TEST ONLY program)          RMEM-CARVEOUT-CHECK <check> ok|FAIL ...
#   4. a kprobe on KVM's kvm_pgtable_stage2_map, filtered to carve-out
#      physical addresses                      RMEM-L1-S2MAP-KPROBE yes|no
#   5. rmem-shmem-test-backend --carveout: its pieces are carve-out pages;
#      the guest (L2 scenario "shm", case "probe") reads and writes them and
#      runs rmem_l2_probe.ko on the read-write mailbox page
#                                              RMEM-BACKEND-..., RMEM-L2-PROBE ...,
#      then (--revoke-live, rmem.shmrevoke=live) the back-end revokes a
#      piece the guest has mapped and read, and unmaps it only 2 s
#      after the guest's next load from it: KVM_RUN fails with EFAULT,
#      rmem-vmm waits for the piece to be removed, and after the unmap the
#      load is a violation (external abort, guest SIGBUS)
#                                              RMEM-L2-SHM-REVOKE before|after ...,
#                                              RMEM-BACKEND-LIVE-...,
#      rmem-vmm must exit 5 (powered off after a violation)
#                                              RMEM-L1-VMM-EXIT <rc>
#      and what it said (from its stderr)      RMEM-L1-VMM-EFAULT-WAIT <its line>
#                                              RMEM-L1-SHM-VIOLATION <report>
#                                              RMEM-L1-SHM-VIOLATIONS <n> (<logged> logged)
#                                              RMEM-L1-SHM-STOPPED <its "guest ..." line>|no
#   6. while a file of the device is open (as a mapping keeps it), rmmod
#      must fail                               RMEM-L1-CARVEOUT-RMMOD-BUSY yes|no
#   7. what KVM put into stage 2 for carve-out pages (prot bit 3 = DEVICE);
#      the scenario fails if it saw none or any Device one
#                                              RMEM-L1-S2MAP ipa= size= phys= prot= device=yes|no
#   8. the guest's probe results, read back from the carve-out by L1
#                                              RMEM-CARVEOUT-PEEK <phys> <word>...
#   9. rmmod once nothing is mapped             RMEM-L1-CARVEOUT-RMMOD rc=<n> node=gone|left
#  10. what L1's kernel logged meanwhile (a KVM WARN on the revoke, say)
#                                              RMEM-L1-KERNEL-WARNINGS <n>, RMEM-L1-KERNEL-WARNING <line>...
. /scenarios/lib/vhost_user.sh
. /scenarios/lib/kernel_warnings.sh
SOCK=/tmp/shm.sock
BASE=0x8000000000   # the device's shared memory region in L2 (docs/vmm.md)
PIECES=0x70000000   # secure-video: piece A, piece B, mailbox at +0, +1, +2 MiB
MAILBOX=$((PIECES + 0x200000))
TRACE=/sys/kernel/tracing
status=0
kernel_warnings_mark

insmod /lib/rmem/rmem_carveout.ko
rc=$?
echo "RMEM-L1-CARVEOUT-INSMOD rc=$rc"
dmesg | sed -n 's/.*rmem_carveout: /RMEM-L1-CARVEOUT-DMESG /p'
[ $rc = 0 ] || exit 1

echo "RMEM-L1-CARVEOUT-DEV $(stat -c '%A %u' /dev/rmem-carveout 2>&1)"
filter=""
while read -r base size name; do
  echo "RMEM-L1-CARVEOUT-LIST $base $size $name"
  end=$(printf '0x%x' $((base + size)))
  filter="${filter:+$filter || }(phys >= $base && phys < $end)"
done < /dev/rmem-carveout

rmem-carveout-check mmap || status=1

# KVM does not say which memory type it gives a guest page; its stage-2
# map call does (enum kvm_pgtable_prot: bit 3 is KVM_PGTABLE_PROT_DEVICE).
mount -t tracefs nodev $TRACE 2>/dev/null
kprobe=no
if echo 'p:rmem_s2map kvm_pgtable_stage2_map ipa=%x1:x64 size=%x2:x64 phys=%x3:x64 prot=%x4:x64' \
     > $TRACE/kprobe_events &&
   echo "$filter" > $TRACE/events/kprobes/rmem_s2map/filter &&
   echo 1 > $TRACE/events/kprobes/rmem_s2map/enable; then
  kprobe=yes
fi
echo "RMEM-L1-S2MAP-KPROBE $kprobe"

start_backend shmem-backend $SOCK rmem-shmem-test-backend --socket $SOCK --carveout $PIECES \
  --revoke-live || exit 1
run_guest shm "rmem.shm=$BASE rmem.shmcase=probe rmem.shmrevoke=live" \
  "vhost-user,socket=$SOCK,type=65534"
[ $? = 5 ] || status=1   # powered off after the revoked piece's violation
sed -n 's/^rmem-vmm: \(vCPU [0-9]*: KVM cannot map .*\)/RMEM-L1-VMM-EFAULT-WAIT \1/p' /tmp/vmm.err
sed -n 's/^rmem-vmm: vCPU [0-9]*: isolation violation: /RMEM-L1-SHM-VIOLATION /p' /tmp/vmm.err
echo "RMEM-L1-SHM-VIOLATIONS $(sed -n 's/^rmem-vmm: isolation violations: //p' /tmp/vmm.err)"
echo "RMEM-L1-SHM-STOPPED $(sed -n 's/^rmem-vmm: guest //p' /tmp/vmm.err | grep . || echo no)"

stop_backend shmem-backend
grep '^RMEM-BACKEND-' /tmp/shmem-backend.log

if [ $kprobe = yes ]; then
  echo 0 > $TRACE/events/kprobes/rmem_s2map/enable
  sed -n 's/.*rmem_s2map: ([^)]*) //p' $TRACE/trace > /tmp/s2map
  echo "-:rmem_s2map" > $TRACE/kprobe_events
  [ -s /tmp/s2map ] || status=1
  while read -r ipa size phys prot; do
    p=${prot#prot=}
    if [ $((p & 8)) -ne 0 ]; then device=yes; status=1; else device=no; fi
    echo "RMEM-L1-S2MAP $ipa $size $phys $prot device=$device"
  done < /tmp/s2map
else
  status=1
fi

exec 3</dev/rmem-carveout
if rmmod rmem_carveout 2>/dev/null; then busy=no; status=1; else busy=yes; fi
exec 3<&-
echo "RMEM-L1-CARVEOUT-RMMOD-BUSY $busy"

# Where rmem_l2_probe worked in the mailbox page: the LDXR/STXR word, the
# unaligned load's bytes, the DC ZVA block.
for spot in "0x80 1" "0x100 2" "0x800 8"; do
  set -- $spot
  rmem-carveout-check peek "$(printf '0x%x' $((MAILBOX + $1)))" "$2" || status=1
done

rmmod rmem_carveout
rc=$?
if [ -e /dev/rmem-carveout ]; then node=left; else node=gone; fi
echo "RMEM-L1-CARVEOUT-RMMOD rc=$rc node=$node"
[ $rc = 0 ] && [ $node = gone ] || status=1

kernel_warnings_report || status=1
exit $status
