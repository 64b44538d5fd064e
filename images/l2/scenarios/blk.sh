# L2 scenario "blk": reads and writes the virtio-blk disk /dev/vda that the
# L1 scenario vmm_blk serves with qemu-storage-daemon.
#   RMEM-L2-BLK-SECTORS <n>      the disk's size in 512-byte sectors
#   RMEM-L2-BLK2-SECTORS <n>     the second disk's (/dev/vdb)
#   RMEM-L2-BLK-READ <sha256>    of the disk's first MiB
#   RMEM-L2-BLK-WROTE <sha256>   of the MiB written at offset 1 MiB (fsync'd)
# On failure the kernel's last messages follow as "l2: dmesg:" lines.
MIB=1048576

fail() {
  echo "l2: $1"
  dmesg | tail -n 20 | sed 's/^/l2: dmesg: /'
  exit 1
}

# The driver probes asynchronously after insmod.
for _ in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.1; done
[ -b /dev/vda ] || fail "no /dev/vda"
echo "RMEM-L2-BLK-SECTORS $(cat /sys/block/vda/size)"
# The second device (L1 gives two): its size proves both were probed.
for _ in $(seq 50); do [ -b /dev/vdb ] && break; sleep 0.1; done
echo "RMEM-L2-BLK2-SECTORS $(cat /sys/block/vdb/size 2>/dev/null || echo none)"

first=$(dd if=/dev/vda bs=$MIB count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
echo "RMEM-L2-BLK-READ $first"

yes rmem-l2-wrote-this | head -c $MIB >/tmp/pattern
dd if=/tmp/pattern of=/dev/vda bs=$MIB seek=1 count=1 conv=fsync 2>/tmp/dd.err \
  || fail "writing /dev/vda: $(cat /tmp/dd.err)"
echo "RMEM-L2-BLK-WROTE $(sha256sum </tmp/pattern | cut -d' ' -f1)"
