# L2 scenario "fs": mounts the virtio-fs share tagged "rmem" that the L1
# scenario vmm_fs serves with virtiofsd, reads /hello.txt and writes
# /from-l2.txt.
#   RMEM-L2-FS-LIST <names>      the share's top directory
#   RMEM-L2-FS-READ <content>    of /hello.txt
#   RMEM-L2-FS-WROTE <content>   written to /from-l2.txt
# On failure the kernel's last messages follow as "l2: dmesg:" lines.
TAG=rmem
WROTE=rmem-virtiofs-from-l2

fail() {
  echo "l2: $1"
  dmesg | tail -n 20 | sed 's/^/l2: dmesg: /'
  exit 1
}

mkdir -p /mnt
mount -t virtiofs $TAG /mnt 2>/tmp/mount.err || fail "mount: $(cat /tmp/mount.err)"
echo "RMEM-L2-FS-LIST $(ls /mnt | tr '\n' ' ')"
echo "RMEM-L2-FS-READ $(cat /mnt/hello.txt)"
echo $WROTE >/mnt/from-l2.txt && sync || fail "writing /mnt/from-l2.txt"
umount /mnt || fail "umount /mnt"
echo "RMEM-L2-FS-WROTE $WROTE"
