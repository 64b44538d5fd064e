# L1 scenario "vmm_blk": the L2 guest (scenario "blk") reads and writes a
# virtio-blk disk served by Debian's qemu-storage-daemon over vhost-user:
# guest driver <-> virtio-mmio <-> rmem-vmm <-> vhost-user <-> daemon.
# A second, 4 MiB disk on its own socket makes two devices on one VM; the
# guest reports its size (RMEM-L2-BLK2-SECTORS).
#   RMEM-L1-BLK-EXPECT <sha256>        of the image's first MiB, before the boot
#   RMEM-L1-VMM-EXIT <rc>, RMEM-L1-VMM-SECONDS <s>
#   RMEM-L1-BLK-VERIFY <sha256> ok|bad of the image's second MiB after the
#                                      boot, against the guest's BLK-WROTE
#   RMEM-L1-BACKEND-EXIT qemu-storage-daemon <rc>
# The guest's own markers (RMEM-L2-BLK-READ, -WROTE) are on the console too;
# the test compares READ with EXPECT.
. /scenarios/lib/vhost_user.sh
MIB=1048576
DISK=/tmp/disk.img
SOCK=/tmp/blk.sock
DISK2=/tmp/disk2.img
SOCK2=/tmp/blk2.sock

# 8 MiB: a deterministic first MiB, zeros after it.
yes rmem-l1-disk | head -c $MIB >$DISK
dd if=/dev/zero bs=$MIB count=7 2>/dev/null >>$DISK
dd if=/dev/zero of=$DISK2 bs=$MIB count=4 2>/dev/null
echo "RMEM-L1-BLK-EXPECT $(head -c $MIB $DISK | sha256sum | cut -d' ' -f1)"

start_backend qemu-storage-daemon $SOCK qemu-storage-daemon \
  --blockdev driver=file,node-name=disk,filename=$DISK \
  --export type=vhost-user-blk,id=exp,node-name=disk,addr.type=unix,addr.path=$SOCK,writable=on \
  --blockdev driver=file,node-name=disk2,filename=$DISK2 \
  --export type=vhost-user-blk,id=exp2,node-name=disk2,addr.type=unix,addr.path=$SOCK2,writable=on \
  || exit 1
for _ in $(seq 50); do [ -S $SOCK2 ] && break; sleep 0.1; done
run_guest blk "" "vhost-user,socket=$SOCK,type=blk" "vhost-user,socket=$SOCK2,type=blk"
status=$?

written=$(dd if=$DISK bs=$MIB skip=1 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
verdict BLK "$(guest_marker RMEM-L2-BLK-WROTE)" "$written" || status=1
stop_backend qemu-storage-daemon

# The back-end dies under a running guest: rmem-vmm must say so and keep
# running (then stop cleanly on SIGTERM), never crash.
#   RMEM-L1-CHECK backend-gone <rmem-vmm exit> ok|bad
start_backend qemu-storage-daemon $SOCK qemu-storage-daemon \
  --blockdev driver=file,node-name=disk,filename=$DISK \
  --export type=vhost-user-blk,id=exp,node-name=disk,addr.type=unix,addr.path=$SOCK,writable=on \
  || exit 1
rmem-vmm --kernel $KERNEL --initrd $INITRD --memory 256 --cpus 2 --timeout 120 \
  --device "vhost-user,socket=$SOCK,type=blk" --append "$APPEND rmem.l2=hang" \
  >/tmp/gone.out 2>/tmp/gone.err &
vmm=$!
for _ in $(seq 600); do grep -q RMEM-L2-HANG /tmp/gone.out && break; sleep 0.2; done
kill -KILL $backend
wait $backend 2>/dev/null
for _ in $(seq 100); do grep -q "disconnected" /tmp/gone.err && break; sleep 0.1; done
kill -0 $vmm 2>/dev/null && alive=yes || alive=no
kill -TERM $vmm
wait $vmm
rc=$?
if [ $alive = yes ] && [ $rc = 143 ] && grep -q "disconnected" /tmp/gone.err; then
  echo "RMEM-L1-CHECK backend-gone $rc ok"
else
  echo "RMEM-L1-CHECK backend-gone $rc bad (alive after the kill: $alive)"
  sed 's/^/l1: rmem-vmm: /' /tmp/gone.err
  status=1
fi
exit $status
