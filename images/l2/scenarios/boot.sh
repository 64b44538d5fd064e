# L2 scenario "boot": the guest came up; report what the VMM gave it.
echo "RMEM-L2-OK boot"
echo "RMEM-L2-CPUS $(grep -c '^processor' /proc/cpuinfo)"
echo "RMEM-L2-MEMKB $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
echo "RMEM-L2-UPTIME $(cut -d" " -f1 /proc/uptime)"

# The guest driver (guest_driver/virtio_rmem) on a guest without an rmem
# device: it loads, registers with the virtio bus, and unloads leaving
# nothing behind, without a kernel warning. Then rmemtool runs and finds no
# /dev/rmem. Markers:
#   RMEM-L2-RMEMMOD load=ok|failed driver=registered|missing unload=ok|failed gone=yes|no warnings=<n>
#   RMEM-L2-TOOL ...   (rmemtool's own lines; "expect ... verdict=ok")
DRIVER=/sys/bus/virtio/drivers/virtio_rmem
load=failed driver=missing unload=skipped gone=no
if insmod /lib/rmem/virtio_rmem.ko 2>/tmp/rmem-insmod.err; then
  load=ok
  [ -d $DRIVER ] && driver=registered
  if rmmod virtio_rmem 2>/tmp/rmem-rmmod.err; then unload=ok; else unload=failed; fi
  if [ ! -e $DRIVER ] && ! grep -q '^virtio_rmem ' /proc/modules; then gone=yes; fi
fi
warnings=$(dmesg | grep -c -E 'WARNING:|BUG:|Oops|Call trace:')
echo "RMEM-L2-RMEMMOD load=$load driver=$driver unload=$unload gone=$gone warnings=$warnings"
[ $load = ok ] || sed 's/^/  insmod: /' /tmp/rmem-insmod.err
[ $unload = failed ] && sed 's/^/  rmmod: /' /tmp/rmem-rmmod.err
rmemtool 'expect=ENOENT info'
exit 0
