# L2 scenario "rmem": the guest driver (guest_driver/virtio_rmem, rmemtool)
# against rmemd, the real broker, which L1 runs with the documented example
# configuration (docs/rmemd.example.toml) over the SoC's carve-outs. Three
# guests run at once (L1 scenario rmem_driver), each with its role from the
# kernel command line (rmem.role=):
#   owner     VM 1 "decrypt": shares and lends secure-video buffers to
#             display, checks errors and malformed requests, survives an
#             unbind, loses a borrower (L1 kills display's VMM), and works
#             on through an rmemd crash (L1 kills rmemd at the end and
#             starts it again)
#   peer      VM 2 "display": receives, reads, cannot write; writes what it
#             may; loses a revoked buffer and a dead owner's buffer. It
#             retrieves a second buffer (v2) after mapping v, so that the
#             stranger's revocation (after both RETRIEVED) finds v mapped;
#             the pool is whole after the stranger died, a new buffer is
#             zeroed; L1 kills its VMM while it maps the owner's last share
#   stranger  VM 3 "infotainment": holds a leaked handle (rmem.handle=) it
#             cannot use, is refused secure-video, hits its quota; owns
#             secure-ui buffers it shares, revokes, donates; its VMM is
#             killed by L1 while display holds one of its buffers
# Everything is ordered by the device's events, never by sleeping: display's
# OFFERED events arrive in the order a (owner), u v v2 g w (stranger), l f
# (owner), because the stranger boots once the owner's first share exists
# and the owner lends only after display gave `a` back, which display does
# after the stranger is gone.
# Markers:
#   RMEM-L2-RMEM-PROBE dev=yes|no            /dev/rmem after insmod
#   RMEM-L2-TOOL <verb> ...                  rmemtool's lines
#   RMEM-L2-RMEM-PHASE <phase> rc=<n>        after each rmemtool run
#   RMEM-L2-RMEM-UNBIND dev=gone|left        (owner) unbound under a mapping
#   RMEM-L2-RMEM-REBIND dev=yes|no           (owner) and bound again
#   RMEM-L2-RMEM-KILL-BACKEND                (owner) asks L1 to kill rmemd
#                                            (and start it again)
#   RMEM-L2-RMEMMOD unload=ok|failed gone=yes|no warnings=<n>
#   RMEM-L2-RMEM-DMESG <line>                the driver's kernel messages
# The scenario fails if a phase or the unload did.
status=0
role="" handle="" rounds=1000
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rmem.role=*) role="${arg#rmem.role=}" ;;
    rmem.handle=*) handle="${arg#rmem.handle=}" ;;
    rmem.rounds=*) rounds="${arg#rmem.rounds=}" ;;
  esac
done
T=timeout=300  # the other guests may still be booting (TCG, nested)

phase() {
  name=$1
  shift
  rmemtool "$@"
  rc=$?
  echo "RMEM-L2-RMEM-PHASE $name rc=$rc"
  [ $rc = 0 ] || status=1
}

insmod /lib/rmem/virtio_rmem.ko raw_requests=1 request_timeout_ms=20000
if [ -c /dev/rmem ]; then echo "RMEM-L2-RMEM-PROBE dev=yes"; else echo "RMEM-L2-RMEM-PROBE dev=no"; fi
DRIVER=/sys/bus/virtio/drivers/virtio_rmem

owner() {
  # 1. A read-only share with display, given back, reclaimed intact.
  phase share 'info' \
    'alloc secure-video 1M as=a' 'bufinfo a' 'fill a 0xc3' 'check a 0xc3' \
    'expect=EACCES share a 2:rwm' 'share a 2:rm' 'expect=EBUSY free a' \
    "events type=RELINQUISHED $T" 'reclaim a' 'check a 0xc3' 'free a' 'close a'
  # 2. Lend: the owner's mapping goes while lent, comes back on reclaim.
  phase lend \
    'alloc secure-video 64K as=l' 'fill l 0x11' 'map l rw' 'lend l 2:rm' \
    'expect=EFAULT touch l' 'bufinfo l' "events type=RELINQUISHED $T" 'reclaim l' \
    'bufinfo l' 'check l 0x11' 'free l' 'close l'
  # 3. What the broker refuses this VM.
  phase own \
    'alloc secure-video 4K align=2M as=big' 'bufinfo big' 'free big' 'close big' \
    'expect=EACCES alloc secure-ui 4K as=z' 'expect=ENOSPC alloc secure-video 49M as=z' \
    'expect=EINVAL alloc 0 0 as=z' 'expect=EINVAL alloc 0 4K align=3 as=z' \
    'expect=ENOENT alloc 7 4K as=z' 'expect=ENOENT retrieve 0x5eed5eed5eed5eed' \
    'expect=ENOENT relinquish handle=0x5eed5eed5eed5eed'
  # 4. Malformed requests through the raw ioctl: the device's statuses.
  phase bad 'bad'
  # 5. The device goes away under a live mapping, and comes back.
  dev=$(basename "$(ls -d $DRIVER/virtio* 2>/dev/null | head -n 1)")
  rmemtool 'alloc secure-video 64K as=u' 'fill u 0x77' 'map u' 'touch u' 'sleep 4000' \
    'expect=EFAULT touch u' 'bufinfo u' 'expect=ENODEV free u' 'expect=ENODEV alloc 0 4K as=v' \
    'close u' >/tmp/unbind.out 2>&1 &
  tool=$!
  sleep 2
  echo -n "$dev" >$DRIVER/unbind
  if [ -e /dev/rmem ]; then echo "RMEM-L2-RMEM-UNBIND dev=left"; else echo "RMEM-L2-RMEM-UNBIND dev=gone"; fi
  wait $tool
  rc=$?
  cat /tmp/unbind.out
  echo "RMEM-L2-RMEM-PHASE unbind rc=$rc"
  [ $rc = 0 ] || status=1
  echo -n "$dev" >$DRIVER/bind
  if [ -c /dev/rmem ]; then echo "RMEM-L2-RMEM-REBIND dev=yes"; else echo "RMEM-L2-RMEM-REBIND dev=no"; fi
  phase rebind 'info' 'alloc secure-video 4K as=r' 'fill r 0x01' 'check r 0x01' 'free r'
  # 6. A borrower dies: display's VMM is killed while it maps our share
  #    (L1 does it); we hear RELINQUISHED (peer-gone), reclaim the bytes
  #    intact, and the heap is whole again.
  phase lost \
    'alloc secure-video 1M as=f' 'fill f 0x66' 'share f 2:rm' "events type=RELINQUISHED $T" \
    'reclaim f' 'check f 0x66' 'free f' 'close f' 'info'
  # 7. rmemd dies under a live mapping and comes back: L1 kills it (the
  #    other guests are gone by now) and starts it again from its state
  #    once our second touch waits for it (rmem-vmm holds an access to the
  #    buffers' region while its back-end is away). That touch then reads
  #    the buffer: the mapping is back, the bytes intact; requests work on.
  rmemtool 'alloc secure-video 64K as=k' 'fill k 0x42' 'map k' 'touch k' 'sleep 6000' \
    'touch k' 'check k 0x42' 'bufinfo k' 'free k' 'close k' \
    'alloc secure-video 64K as=n' 'check n 0x00' 'free n' 'close n' 'info' \
    >/tmp/restart.out 2>&1 &
  tool=$!
  sleep 2
  echo "RMEM-L2-RMEM-KILL-BACKEND"
  wait $tool
  rc=$?
  cat /tmp/restart.out
  echo "RMEM-L2-RMEM-PHASE restart rc=$rc"
  [ $rc = 0 ] || status=1
}

peer() {
  # The owner's read-only share: read it, fail to write it, keep it mapped.
  # Then the stranger's four buffers, then give the owner's back.
  phase receive 'info' \
    "events type=OFFERED $T" 'retrieve event as=p' 'bufinfo p' 'check p 0xc3' 'try-write p' \
    'map p' 'touch p' \
    "events type=OFFERED $T" 'retrieve event as=q' 'fill q 0x3c' 'check q 0x3c' \
    'relinquish q' 'close q' \
    "events type=OFFERED $T" 'retrieve event as=v' 'map v' 'touch v' \
    "events type=OFFERED $T" 'retrieve event as=v2' \
    "events 2 type=REVOKED $T" 'expect=EFAULT touch v' 'bufinfo v' 'expect=ENOENT relinquish v' \
    'close v' 'close v2' \
    "events type=OFFERED $T" 'retrieve event as=g' 'bufinfo g' 'check g 0x00' 'free g' \
    'close g' \
    "events type=OFFERED $T" 'retrieve event as=w' 'check w 0x77' 'map w' 'touch w' \
    "events type=REVOKED $T" 'expect=EFAULT touch w' 'bufinfo w' 'close w' 'info' \
    'alloc secure-ui 64K as=z' 'check z 0x00' 'free z' 'close z' \
    'touch p' 'relinquish p' 'close p'
  # The owner's loan.
  phase borrow \
    "events type=OFFERED $T" 'retrieve event as=l' 'bufinfo l' 'check l 0x11' 'try-write l' \
    'relinquish l' 'close l'
  # The owner's last share, held while L1 kills this VM's VMM.
  phase held \
    "events type=OFFERED $T" 'retrieve event as=f' 'check f 0x66' 'map f' 'touch f' \
    'sleep 600000'
}

stranger() {
  # A leaked handle is useless to a VM it was not offered to; secure-video
  # is not ours at all; a quota holds.
  phase stranger 'info' "expect=ENOENT retrieve $handle as=x" \
    'expect=EACCES alloc secure-video 4K as=z' \
    'alloc secure-ui 2M as=q' 'expect=ENOSPC alloc secure-ui 4K as=z' 'free q' 'close q'
  # Our own secure-ui buffers: read-write share (display writes 0x3c),
  # a revoked share, a donation, then one display holds while L1 kills our VMM.
  phase give \
    'alloc secure-ui 64K as=u' 'share u 2:rwm' "events type=RELINQUISHED $T" 'reclaim u' \
    'check u 0x3c' 'free u' 'close u' \
    'alloc secure-ui 64K as=v' 'fill v 0x5a' 'share v 2:rm' \
    'alloc secure-ui 4K as=v2' 'share v2 2:rm' "events 2 type=RETRIEVED $T" \
    'reclaim v revoke' 'reclaim v2 revoke' 'check v 0x5a' 'free v' 'free v2' 'close v' 'close v2' \
    'alloc secure-ui 16K as=g' 'donate g 2' "events type=DONATED $T" 'bufinfo g' 'close g'
  phase doomed \
    'alloc secure-ui 64K as=w' 'fill w 0x77' 'share w 2:rm' "events type=RETRIEVED $T" \
    'sleep 600000'
}

# The benchmark (L1 scenario rmem_bench): rmem.rounds= rounds of each.
bench_owner() {
  phase bench-alloc "bench alloc secure-video 8M rounds=$rounds"
  phase bench-share "bench share secure-video 8M to=2 rounds=$rounds"
}
bench_peer() {
  phase bench-peer "bench peer rounds=$rounds"
}

case "$role" in
  owner) owner ;;
  peer) peer ;;
  stranger) stranger ;;
  bench-owner) bench_owner ;;
  bench-peer) bench_peer ;;
  *) echo "l2: rmem: no rmem.role=owner|peer|stranger|bench-owner|bench-peer"; exit 2 ;;
esac

# Unload: remove() with the device bound (broken for the owner), then
# nothing left.
unload=failed gone=no
rmmod virtio_rmem 2>/tmp/rmmod.err && unload=ok
[ ! -e $DRIVER ] && [ ! -e /dev/rmem ] && gone=yes
warnings=$(dmesg | grep -c -E 'WARNING:|BUG:|Oops|Call trace:|refcount_t:')
echo "RMEM-L2-RMEMMOD unload=$unload gone=$gone warnings=$warnings"
[ "$unload $gone $warnings" = "ok yes 0" ] || status=1
dmesg | grep -E 'virtio_rmem|rmem' | sed 's/^/RMEM-L2-RMEM-DMESG /'
exit $status
