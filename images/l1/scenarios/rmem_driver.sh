# L1 scenario "rmem_driver": the guest driver (guest_driver/virtio_rmem) end
# to end. The virtio-rmem device is served by rmem-device-test-backend (TEST
# ONLY: the real device model over a broker on memfd carve-outs, buffers
# mapped into the guest with SHMEM_MAP, and a scripted peer VM inside it)
# until rmemd serves it; rmem-vmm gives it to the L2 guest (scenario "rmem")
# as a virtio-mmio device of type 48896 (0xbf00). Markers:
#   RMEM-BACKEND-...           the back-end's (its peer's script, its stats)
#   RMEM-L2-...                the guest's (images/l2/scenarios/rmem.sh)
#   RMEM-L1-VMM-EXIT <rc>      0: the guest powered off (a stray access to
#                              the region would have stopped it with 5)
#   RMEM-L1-RMEM-BACKEND-KILLED  the guest asked for the device to break
#   RMEM-L1-BACKEND-EXIT rmem-backend <rc>   137: killed as asked
. /scenarios/lib/vhost_user.sh
SOCK=/tmp/rmem.sock
VMM_TIMEOUT=300   # ~35 s on an idle machine, 80 s seen on a loaded one
status=0

start_backend rmem-backend $SOCK rmem-device-test-backend --socket $SOCK || exit 1
# When the guest asks for it on its console, the device breaks: SIGKILL.
(
  for _ in $(seq 900); do
    if grep -q RMEM-L2-RMEM-KILL-BACKEND $GUEST_OUT 2>/dev/null; then
      kill -KILL $backend
      echo "RMEM-L1-RMEM-BACKEND-KILLED"
      exit 0
    fi
    sleep 0.2
  done
) &
watcher=$!
rm -f $GUEST_OUT
run_guest rmem "" "vhost-user,socket=$SOCK,type=48896" || status=1
kill $watcher 2>/dev/null
wait $watcher
# It ends by itself once rmem-vmm hung up; give it the time to.
for _ in $(seq 100); do kill -0 $backend 2>/dev/null || break; sleep 0.1; done
stop_backend rmem-backend >/tmp/rmem-backend.stop
# The back-end's markers once, then its exit status; its other lines prefixed.
grep '^RMEM-BACKEND-' /tmp/rmem-backend.log
grep -v '^l1: rmem-backend: RMEM-BACKEND-' /tmp/rmem-backend.stop
exit $status
