# Shared by the L1 scenarios that give the L2 guest a vhost-user device
# (vmm_blk, vmm_fs): start Debian's back-end, boot the guest with rmem-vmm,
# stop the back-end. Sourced, not a scenario.
KERNEL=/guest/Image
INITRD=/guest/l2.cpio
APPEND='console=ttyS0 quiet panic=-1'
GUEST_OUT=/tmp/guest.out
uptime() { cut -d' ' -f1 /proc/uptime; }

# start_backend NAME SOCKET COMMAND...: runs COMMAND in the background (its
# output in /tmp/NAME.log), sets $backend to its pid and waits up to 10 s for
# it to listen on SOCKET; on failure prints why and returns 1.
start_backend() {
  name=$1 sock=$2
  shift 2
  rm -f "$sock"
  "$@" >/tmp/$name.log 2>&1 &
  backend=$!
  for _ in $(seq 100); do
    [ -S "$sock" ] && return 0
    kill -0 $backend 2>/dev/null || break
    sleep 0.1
  done
  echo "l1: $name is not listening on $sock:"
  sed "s/^/l1: $name: /" /tmp/$name.log
  return 1
}

# stop_backend NAME: stops the back-end (it may have ended with its client)
# and prints RMEM-L1-BACKEND-EXIT NAME <status> and its output.
stop_backend() {
  kill -TERM $backend 2>/dev/null
  wait $backend
  echo "RMEM-L1-BACKEND-EXIT $1 $?"
  sed "s/^/l1: $1: /" /tmp/$1.log
}

# run_guest L2_SCENARIO APPEND DEVICE...: rmem-vmm boots the guest into
# L2_SCENARIO with one `--device` per DEVICE, APPEND added to its command
# line, and $VMM_OPTIONS (if set) as more rmem-vmm options. The guest's
# console is kept in $GUEST_OUT and then shown, as is rmem-vmm's stderr;
# prints RMEM-L1-VMM-EXIT <status> and RMEM-L1-VMM-SECONDS <s> and returns
# rmem-vmm's exit status. The guest may run for $VMM_TIMEOUT seconds (120
# unless the scenario sets it).
run_guest() {
  l2=$1 append=$2
  shift 2
  devices=""
  for device in "$@"; do devices="$devices --device $device"; done
  start=$(uptime)
  # shellcheck disable=SC2086
  rmem-vmm --kernel $KERNEL --initrd $INITRD --memory 256 --cpus 2 --timeout "${VMM_TIMEOUT:-120}" \
    --stats ${VMM_OPTIONS:-} $devices --append "$APPEND rmem.l2=$l2 $append" >$GUEST_OUT 2>/tmp/vmm.err
  rc=$?
  end=$(uptime)
  tr -d '\r' <$GUEST_OUT
  sed 's/^/l1: rmem-vmm: /' /tmp/vmm.err
  echo "RMEM-L1-VMM-EXIT $rc"
  echo "RMEM-L1-VMM-SECONDS $(echo "$start $end" | awk '{printf "%.2f", $2 - $1}')"
  return $rc
}

# guest_marker NAME: the rest of the guest's first NAME marker line.
guest_marker() {
  tr -d '\r' <$GUEST_OUT | sed -n "s/^$1 //p" | head -n 1
}

# verdict NAME EXPECTED GOT: prints RMEM-L1-NAME-VERIFY GOT ok|bad and
# returns 1 if GOT is empty or differs from EXPECTED.
verdict() {
  if [ -n "$3" ] && [ "$2" = "$3" ]; then
    echo "RMEM-L1-$1-VERIFY $3 ok"
  else
    echo "RMEM-L1-$1-VERIFY ${3:-none} bad (expected ${2:-none})"
    return 1
  fi
}
