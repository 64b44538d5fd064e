# L1 scenario "rmem_bench": the virtio-rmem benchmark (tools/bench-soc).
# rmemd serves two guests as in rmem_driver; decrypt times ALLOC and FREE
# of 8 MiB (and the guest's own mmap + zero + munmap of 8 MiB beside them),
# then shares one 8 MiB buffer with display N times (until display has
# retrieved it, until it relinquished it, and the reclaim); display times
# its RETRIEVE and RELINQUISH. Before the guests, in this same run,
# rmem-memslot-bench prints the floors (a Unix-socket round trip plus one
# 8 MiB memslot add: rtt_plus_map). rmem.rounds= (default 1000) from the
# SoC's command line (tools/bench-soc --rounds).
# Markers: RMEM-BENCH ... (floors), "<guest>: RMEM-L2-TOOL bench ..."
# (figures), RMEM-L1-VMM-EXIT <guest> <rc>.
KERNEL=/guest/Image
INITRD=/guest/l2.cpio
rounds=1000
for arg in $(cat /proc/cmdline); do
  case "$arg" in rmem.rounds=*) rounds="${arg#rmem.rounds=}" ;; esac
done
APPEND="console=ttyS0 quiet panic=-1 rmem.l2=rmem rmem.rounds=$rounds"
status=0

rmem-memslot-bench "$rounds" || status=1
insmod /lib/rmem/rmem_carveout.ko || { echo "l1: insmod rmem_carveout failed"; exit 1; }
mkdir -p /tmp/rmemd
sed 's|/run/rmemd|/tmp/rmemd|' /etc/rmemd/example.toml >/tmp/rmemd.toml
rmemd --fdt /sys/firmware/fdt --config /tmp/rmemd.toml >/tmp/rmemd.log 2>&1 &
rmemd=$!
for _ in $(seq 100); do [ -S /tmp/rmemd/infotainment.sock ] && break; sleep 0.2; done
for g in decrypt:bench-owner display:bench-peer; do
  name=${g%%:*} role=${g#*:}
  rmem-vmm --kernel $KERNEL --initrd $INITRD --memory 192 --cpus 1 --timeout 3000 \
    --device "vhost-user,socket=/tmp/rmemd/$name.sock,type=48896" \
    --append "$APPEND rmem.role=$role" >/tmp/$name.out 2>/tmp/$name.err &
  eval "vmm_$name=$!"
done
for name in decrypt display; do
  eval "pid=\$vmm_$name"
  wait "$pid"
  rc=$?
  tr -d '\r' <"/tmp/$name.out" | sed "s/^/$name: /"
  sed "s/^/$name: l1: rmem-vmm: /" "/tmp/$name.err"
  echo "RMEM-L1-VMM-EXIT $name $rc"
  [ $rc = 0 ] || status=1
  # A benchmark phase that failed fails the run (its figures are missing).
  tr -d '\r' <"/tmp/$name.out" | grep -q '^RMEM-L2-RMEM-PHASE .* rc=[^0]' && status=1
done
kill -TERM $rmemd
wait $rmemd
echo "RMEM-L1-RMEMD-EXIT $?"
sed 's/^/RMEM-L1-RMEMD /' /tmp/rmemd.log
dmesg | grep -iE 'out of memory|oom|killed process' | sed 's/^/RMEM-L1-DMESG /'
exit $status
