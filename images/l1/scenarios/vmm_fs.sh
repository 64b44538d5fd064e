# L1 scenario "vmm_fs": the L2 guest (scenario "fs") mounts a directory of L1
# shared by Debian's virtiofsd over vhost-user, with the tag "rmem" that
# rmem-vmm serves (virtiofsd has no config space to offer), reads a file and
# writes one.
#   RMEM-L1-FS-EXPECT <content>        of /hello.txt in the shared directory
#   RMEM-L1-VMM-EXIT <rc>, RMEM-L1-VMM-SECONDS <s>
#   RMEM-L1-FS-VERIFY <content> ok|bad of /from-l2.txt after the boot,
#                                      against the guest's FS-WROTE
#   RMEM-L1-BACKEND-EXIT virtiofsd <rc>
# The guest's own markers (RMEM-L2-FS-LIST, -READ, -WROTE) are on the console
# too; the test compares READ with EXPECT.
. /scenarios/lib/vhost_user.sh
SHARE=/tmp/share
SOCK=/tmp/fs.sock
CONTENT=rmem-virtiofs-from-l1

mkdir -p $SHARE
echo $CONTENT >$SHARE/hello.txt
echo "RMEM-L1-FS-EXPECT $CONTENT"

# The default namespace sandbox needs unshare(2); chroot is enough for root.
start_backend virtiofsd $SOCK /usr/lib/qemu/virtiofsd --socket-path=$SOCK \
  -o source=$SHARE -o sandbox=chroot -o cache=none || exit 1
run_guest fs "" "vhost-user,socket=$SOCK,type=fs,tag=rmem"
status=$?

verdict FS "$(guest_marker RMEM-L2-FS-WROTE)" "$(cat $SHARE/from-l2.txt 2>/dev/null)" || status=1
stop_backend virtiofsd
exit $status
