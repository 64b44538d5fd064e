# L1 scenario "vmm_boot": rmem-vmm boots the L2 guest (scenario "boot") under
# KVM, then its ways of ending are checked, each on its own guest:
#   RMEM-L1-VMM-EXIT <rc>                  the boot (0: guest powered off)
#   RMEM-L1-VMM-SECONDS <s>                wall time of that boot, VMM start to exit
#   RMEM-L1-CHECK <name> <rc> ok|bad       timeout, sigterm, bad-kernel, usage
# The guest's console is the VMM's stdout, so its RMEM-L2- markers show on
# the L1 console. The scenario fails if any of this went wrong.
KERNEL=/guest/Image
INITRD=/guest/l2.cpio
APPEND='console=ttyS0 quiet panic=-1'
uptime() { cut -d' ' -f1 /proc/uptime; }

start=$(uptime)
rmem-vmm --kernel $KERNEL --initrd $INITRD --memory 256 --cpus 2 --timeout 60 \
  --append "$APPEND rmem.l2=boot"
rc=$?
end=$(uptime)
echo "RMEM-L1-VMM-EXIT $rc"
echo "RMEM-L1-VMM-SECONDS $(echo "$start $end" | awk '{printf "%.2f", $2 - $1}')"
status=$rc

# check NAME WANT_RC RC LOG PATTERN: the exit status and a line of stderr.
check() {
  if [ "$3" = "$2" ] && grep -q "$5" "$4"; then verdict=ok; else verdict=bad; status=1; fi
  echo "RMEM-L1-CHECK $1 $3 $verdict"
  [ $verdict = ok ] || sed 's/^/  stderr: /' "$4"
}

rmem-vmm --kernel $KERNEL --initrd $INITRD --timeout 3 --append "$APPEND rmem.l2=hang" \
  >/dev/null 2>/tmp/timeout.err
check timeout 124 $? /tmp/timeout.err "guest timed out"

rmem-vmm --kernel $KERNEL --initrd $INITRD --append "$APPEND rmem.l2=hang" \
  >/tmp/sigterm.out 2>/tmp/sigterm.err &
vmm=$!
# SIGTERM once the guest is up, so that it is the VMM, not the default action, that handles it.
for _ in $(seq 100); do grep -q RMEM-L2-HANG /tmp/sigterm.out && break; sleep 0.2; done
kill -TERM $vmm
wait $vmm
check sigterm 143 $? /tmp/sigterm.err "Terminated received, stopping the guest"

rmem-vmm --kernel $INITRD >/dev/null 2>/tmp/badkernel.err
check bad-kernel 1 $? /tmp/badkernel.err "no arm64 Image magic"

rmem-vmm --kernel $KERNEL --cpus 9 >/dev/null 2>/tmp/usage.err
check usage 2 $? /tmp/usage.err "cpus 9: must be in"

exit $status
