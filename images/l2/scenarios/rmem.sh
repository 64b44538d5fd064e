# L2 scenario "rmem": the guest driver against the virtio-rmem device that
# L1 serves with its TEST ONLY back-end (L1 scenario rmem_driver); VM 2, the
# peer, is scripted inside that back-end. rmemtool runs each phase as one
# process (its dma-buf fds live as long as it does). Markers:
#   RMEM-L2-RMEM-PROBE dev=yes|no            /dev/rmem after insmod
#   RMEM-L2-TOOL <verb> ...                  rmemtool's lines
#   RMEM-L2-RMEM-PHASE <phase> rc=<n>        after each rmemtool run
#   RMEM-L2-RMEM-UNBIND dev=gone|left        the device unbound under a live mapping
#   RMEM-L2-RMEM-REBIND dev=yes|no           and bound again
#   RMEM-L2-RMEM-KILL-BACKEND                asks L1 to kill the back-end
#   RMEM-L2-RMEMMOD unload=ok|failed gone=yes|no warnings=<n>
#   RMEM-L2-RMEM-DMESG <line>                the driver's kernel messages
# The scenario fails if a phase or the unload did.
status=0
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

# 1. The peer's offers: a read-only share it revokes after we retrieved it,
#    then a read-write one we fill and give back (the peer reads it).
phase receive 'info' \
  'events type=OFFERED timeout=60' 'retrieve event as=p' 'bufinfo p' 'check p 0xc3' \
  'try-write p' 'map p' 'touch p' 'events type=REVOKED timeout=60' 'expect=EFAULT touch p' \
  'bufinfo p' 'try-mmap p' 'expect=ENOENT relinquish p' 'close p' \
  'events type=OFFERED timeout=60' 'retrieve event as=q' 'fill q 0x3c' 'check q 0x3c' \
  'relinquish q' 'expect=ENOENT relinquish q' 'try-mmap q' 'close q'

# 2. Our own buffers: share, lend, donate to the peer, device-only, errors.
phase own \
  'alloc secure-video 64K as=a' 'bufinfo a' 'fill a 0x5a' 'check a 0x5a' 'try-write a' \
  'share a 2:rm' 'expect=EBUSY free a' 'events type=RELINQUISHED timeout=60' \
  'reclaim a' 'check a 0x5a' 'free a' 'expect=ENOENT free a' 'close a' \
  'alloc secure-video 64K as=l' 'fill l 0x11' 'map l rw' 'lend l 2:rwm' \
  'expect=EFAULT touch l' 'bufinfo l' 'events type=RELINQUISHED timeout=60' 'reclaim l' \
  'bufinfo l' 'try-mmap l' 'free l' 'close l' \
  'alloc secure-video 16K as=g' 'donate g 2' 'events type=DONATED timeout=60' 'bufinfo g' \
  'expect=ENOENT free g' 'close g' \
  'alloc device-only 8K as=d' 'bufinfo d' 'try-mmap d' 'expect=EACCES share d 2:rm' \
  'share d 2:r' 'events type=RELINQUISHED timeout=60' 'reclaim d' 'free d' 'close d' \
  'alloc 0 4K align=2M as=big' 'bufinfo big' 'close big' \
  'expect=EINVAL alloc 0 0 as=z' 'expect=EINVAL alloc 0 4K align=3 as=z' \
  'expect=ENOENT alloc 7 4K as=z' 'expect=ENOENT retrieve 0x5eed5eed5eed5eed' \
  'expect=ENOENT relinquish handle=0x5eed5eed5eed5eed'

# 3. Malformed requests through the raw ioctl: the device's statuses.
phase bad 'bad'

# 4. The device goes away under a live mapping: unbind the driver while
#    rmemtool holds a mapped buffer, then bind it again.
DRIVER=/sys/bus/virtio/drivers/virtio_rmem
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

# 5. The device breaks under a live mapping: L1 kills the back-end when the
#    console says RMEM-L2-RMEM-KILL-BACKEND; rmem-vmm then sets
#    DEVICE_NEEDS_RESET. The driver must zap every mapping and fail every
#    request from then on.
rmemtool 'alloc secure-video 64K as=k' 'fill k 0x42' 'map k' 'touch k' 'sleep 8000' \
  'expect=EFAULT touch k' 'bufinfo k' 'expect=ENODEV free k' 'expect=ENODEV alloc 0 4K as=v' \
  '? info' 'close k' >/tmp/broken.out 2>&1 &
tool=$!
sleep 2
echo "RMEM-L2-RMEM-KILL-BACKEND"
wait $tool
rc=$?
cat /tmp/broken.out
echo "RMEM-L2-RMEM-PHASE broken rc=$rc"
[ $rc = 0 ] || status=1

# 6. Unload: remove() with the (broken) device bound, then nothing left.
unload=failed gone=no
rmmod virtio_rmem 2>/tmp/rmmod.err && unload=ok
[ ! -e $DRIVER ] && [ ! -e /dev/rmem ] && gone=yes
warnings=$(dmesg | grep -c -E 'WARNING:|BUG:|Oops|Call trace:|refcount_t:')
echo "RMEM-L2-RMEMMOD unload=$unload gone=$gone warnings=$warnings"
[ "$unload $gone $warnings" = "ok yes 0" ] || status=1
dmesg | grep -E 'virtio_rmem|rmem' | sed 's/^/RMEM-L2-RMEM-DMESG /'
exit $status
