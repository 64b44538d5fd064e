# L1 scenario "rmem_driver": rmemd, the real broker, serving three L2
# guests at once under rmem-vmm, with the guest driver in each (L2 scenario
# "rmem", one role per guest). rmemd reads the carve-outs from the device
# tree this SoC booted with (/sys/firmware/fdt), reaches them through
# host_driver/rmem_carveout, and is configured with docs/rmemd.example.toml
# (its sockets moved to /tmp/rmemd). Order:
#   1. rmemd starts; decrypt (owner) and display (peer) boot;
#   2. once decrypt's first share exists, infotainment (stranger) boots with
#      its handle on the kernel command line (rmem.handle=);
#   3. once display has mapped infotainment's last buffer (its "touch w"),
#      L1 kills infotainment's rmem-vmm (SIGKILL): a VMM dying while a
#      borrower holds its buffer;
#   4. once display has mapped decrypt's last share ("touch f"), L1 kills
#      display's rmem-vmm: a borrower dying;
#   5. once decrypt asks (RMEM-L2-RMEM-KILL-BACKEND), L1 kills rmemd
#      (SIGKILL) under decrypt's live mapping; decrypt's rmem-vmm drops its
#      mappings and tries to reconnect;
#   6. once decrypt's access to its buffer waits for the device (rmem-vmm:
#      "waits for its device's back-end"), rmemd starts again from the state
#      the killed one recorded (/run/rmemd/state.db): decrypt's VMM
#      reconnects, its mapping is made again, the access completes and
#      decrypt works on; when it has powered off, rmemctl audit shows the
#      requests it made after the restart; SIGTERM.
# Markers (each guest's console lines are prefixed with its name, e.g.
# "decrypt: RMEM-L2-TOOL ..."):
#   RMEM-L1-RMEMD-UP yes|no
#   RMEM-L1-HANDLE <handle>            what infotainment was given
#   RMEM-L1-KILLED-VMM <guest>         steps 3 and 4 done
#   RMEM-L1-KILLED-RMEMD               step 5 done
#   RMEM-L1-ACCESS-WAITED yes|no       decrypt's access waited for rmemd
#   RMEM-L1-VMM-EXIT <guest> <rc>      0: powered off; 137: killed
#   RMEM-L1-RMEMD-EXIT <rc>            137: killed as planned
#   RMEM-L1-RMEMD <line>               rmemd's output
#   RMEM-L1-RMEMD2-EXIT <rc>           the restarted rmemd (0: SIGTERM)
#   RMEM-L1-RMEMD2 <line>              its output
#   RMEM-L1-AUDIT <line>               the end of `rmemctl audit`
#   RMEM-L1-DMESG-WARNINGS <n>         kernel warnings in L1 (KVM, modules)
KERNEL=/guest/Image
INITRD=/guest/l2.cpio
APPEND='console=ttyS0 quiet panic=-1 rmem.l2=rmem'
TIMEOUT=300   # per wait; the whole run takes 1-2 minutes under TCG
VMM_TIMEOUT=900  # per guest
DEV="type=48896"
status=0

. /scenarios/lib/wait.sh
said() { tr -d '\r' <"/tmp/$1.out" 2>/dev/null | grep -q "$2"; }
alive() { kill -0 "$1" 2>/dev/null; }
# said_or_gone NAME PATTERN: NAME said it, or its rmem-vmm is gone (then
# waiting longer is pointless; the caller checks `said` again).
said_or_gone() {
  eval "pid=\$vmm_$1"
  said "$1" "$2" || ! alive "$pid"
}
# awaited NAME PATTERN: waits (up to $TIMEOUT) until NAME says PATTERN;
# if it does not, says so, shows every guest's console so far, fails the
# scenario and returns 1.
awaited() {
  wait_for $TIMEOUT said_or_gone "$1" "$2"
  said "$1" "$2" && return 0
  echo "l1: $1 never said '$2' (its rmem-vmm is $(alive "$pid" && echo running || echo gone))"
  for g in decrypt display infotainment; do
    [ -f /tmp/$g.out ] && tr -d '\r' </tmp/$g.out | sed "s/^/$g (so far): /"
    [ -f /tmp/$g.err ] && sed "s/^/$g (so far): l1: rmem-vmm: /" /tmp/$g.err
  done
  sed 's/^/RMEM-L1-RMEMD (so far) /' /tmp/rmemd.log
  status=1
  return 1
}

# firewall_state N: rmemd prints what its bus firewalls (the models of
# images/platform/rmem-carveouts.dtsi) let every id do, read from their
# registers (SIGUSR1); waits until its N-th such report is complete.
firewall_state() {
  kill -USR1 $rmemd
  wait_for 20 grep -q "firewall state #$1 end" /tmp/rmemd.log ||
    echo "l1: rmemd printed no firewall state #$1"
}

# kill_vmm_after NAME BUFFER VICTIM N: once NAME has mapped BUFFER (its
# "touch BUFFER"), rmemd reports its firewalls (#N) and L1 kills VICTIM's
# rmem-vmm (SIGKILL; marker RMEM-L1-KILLED-VMM); it is killed anyway if the
# wait fails. Then waits for VICTIM's rmem-vmm to end.
kill_vmm_after() {
  eval "victim=\$vmm_$3"
  if awaited "$1" "RMEM-L2-TOOL touch name=$2 result=ok"; then
    firewall_state "$4"
    kill -KILL "$victim"
    echo "RMEM-L1-KILLED-VMM $3"
  else
    kill -KILL "$victim" 2>/dev/null
  fi
  finish "$3" 137
}

# boot NAME ROLE [APPEND...]: rmem-vmm boots the guest in the background,
# its console in /tmp/NAME.out; sets vmm_NAME to its pid.
boot() {
  name=$1 role=$2
  shift 2
  rmem-vmm --kernel $KERNEL --initrd $INITRD --memory 192 --cpus 1 --timeout $VMM_TIMEOUT \
    --device "vhost-user,socket=/tmp/rmemd/$name.sock,$DEV" \
    --append "$APPEND rmem.role=$role $*" >/tmp/$name.out 2>/tmp/$name.err &
  eval "vmm_$name=$!"
}
# finish NAME WANT: waits for its rmem-vmm, shows what it said, and fails
# the scenario unless it exited with WANT.
finish() {
  eval "pid=\$vmm_$1"
  wait "$pid"
  rc=$?
  tr -d '\r' <"/tmp/$1.out" | sed "s/^/$1: /"
  sed "s/^/$1: l1: rmem-vmm: /" "/tmp/$1.err"
  echo "RMEM-L1-VMM-EXIT $1 $rc"
  [ "$rc" = "$2" ] || status=1
}

insmod /lib/rmem/rmem_carveout.ko || { echo "l1: insmod rmem_carveout failed"; exit 1; }
mkdir -p /tmp/rmemd
sed 's|/run/rmemd|/tmp/rmemd|' /etc/rmemd/example.toml >/tmp/rmemd.toml
rmemd --fdt /sys/firmware/fdt --config /tmp/rmemd.toml >/tmp/rmemd.log 2>&1 &
rmemd=$!
if wait_for 20 test -S /tmp/rmemd/infotainment.sock; then
  echo "RMEM-L1-RMEMD-UP yes"
else
  echo "RMEM-L1-RMEMD-UP no"
  sed 's/^/RMEM-L1-RMEMD /' /tmp/rmemd.log
  exit 1
fi

boot decrypt owner
boot display peer
handle=""
if awaited decrypt 'RMEM-L2-TOOL share name=a '; then
  handle=$(tr -d '\r' </tmp/decrypt.out | sed -n 's/^RMEM-L2-TOOL share name=a .*handle=\(0x[0-9a-f]*\).*/\1/p' | head -n 1)
fi
echo "RMEM-L1-HANDLE ${handle:-none}"
boot infotainment stranger "rmem.handle=${handle:-0x0}"

kill_vmm_after display w infotainment 1  # display holds infotainment's secure-ui buffer
kill_vmm_after display f display 2       # display holds decrypt's secure-video buffer
if awaited decrypt 'RMEM-L2-RMEM-KILL-BACKEND'; then
  kill -KILL $rmemd
  wait $rmemd
  echo "RMEM-L1-RMEMD-EXIT $?"
  echo "RMEM-L1-KILLED-RMEMD"
  if wait_for 60 grep -q "waits for its device's back-end" /tmp/decrypt.err; then
    echo "RMEM-L1-ACCESS-WAITED yes"
  else
    echo "RMEM-L1-ACCESS-WAITED no"
  fi
  rmemd --fdt /sys/firmware/fdt --config /tmp/rmemd.toml >/tmp/rmemd2.log 2>&1 &
  rmemd=$!
else
  kill -KILL "$vmm_decrypt" $rmemd 2>/dev/null
  wait $rmemd
  echo "RMEM-L1-RMEMD-EXIT $?"
fi
finish decrypt 0
sed 's/^/RMEM-L1-RMEMD /' /tmp/rmemd.log

# Through the running rmemd's control socket (the example's
# /run/rmemd/control, moved to /tmp/rmemd like its sockets), the way an
# operator asks a live rmemd; `rmemctl --state FILE audit` would read the
# database without it, which rmemd_serve covers on the host.
rmemctl --control /tmp/rmemd/control audit | tail -n 8 | sed 's/^/RMEM-L1-AUDIT /'
kill -TERM $rmemd
wait $rmemd
echo "RMEM-L1-RMEMD2-EXIT $?"
sed 's/^/RMEM-L1-RMEMD2 /' /tmp/rmemd2.log
echo "RMEM-L1-DMESG-WARNINGS $(dmesg | grep -c -E 'WARNING:|BUG:|Oops|Call trace:')"
exit $status
