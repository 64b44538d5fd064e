# L2 scenario "playback": one guest of the secure playback demo
# (images/demo/README.md; L1 scenario playback runs all three at once). The
# guest driver binds to the virtio-rmem device rmemd serves, and rmem-demo
# plays this guest's part, from the kernel command line:
#   rmem.role=decrypt|display|infotainment
#   rmem.frames=N          frames in the stream (all three must agree)
#   rmem.framesize=BYTES   optional; rmem-demo's default is 8 MiB
#   rmem.handle=HANDLE     infotainment: the leaked frame handle
# Markers, beside rmem-demo's own RMEM-DEMO-* lines:
#   RMEM-L2-DEMO-PROBE dev=yes|no     /dev/rmem after insmod
#   RMEM-L2-DEMO-EXIT rc=<n>          rmem-demo's exit status
#   RMEM-L2-DEMO-WARNINGS <n>         kernel warnings in this guest
# The scenario fails if rmem-demo did or the kernel warned.
role="" frames="" framesize="" handle=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rmem.role=*) role="${arg#rmem.role=}" ;;
    rmem.frames=*) frames="${arg#rmem.frames=}" ;;
    rmem.framesize=*) framesize="${arg#rmem.framesize=}" ;;
    rmem.handle=*) handle="${arg#rmem.handle=}" ;;
  esac
done
case "$role" in
  decrypt|display|infotainment) ;;
  *) echo "l2: playback: no rmem.role=decrypt|display|infotainment"; exit 2 ;;
esac

insmod /lib/rmem/virtio_rmem.ko request_timeout_ms=20000
if [ -c /dev/rmem ]; then echo "RMEM-L2-DEMO-PROBE dev=yes"; else echo "RMEM-L2-DEMO-PROBE dev=no"; fi

set -- "$role"
[ -n "$frames" ] && set -- "$@" --frames "$frames"
[ -n "$framesize" ] && set -- "$@" --frame-size "$framesize"
[ -n "$handle" ] && set -- "$@" --handle "$handle"
rmem-demo "$@"
rc=$?
echo "RMEM-L2-DEMO-EXIT rc=$rc"
warnings=$(dmesg | grep -c -E 'WARNING:|BUG:|Oops|Call trace:|refcount_t:')
echo "RMEM-L2-DEMO-WARNINGS $warnings"
[ "$rc $warnings" = "0 0" ]
