# L1 scenario "playback": the secure playback demo (images/demo/README.md),
# the product's main job (tools/run). rmemd, with docs/rmemd.example.toml
# over the SoC's own carve-outs (its sockets moved to /tmp/rmemd), serves
# three L2 guests under rmem-vmm (--stats), each running rmem-demo
# (L2 scenario "playback", one role each):
#   1. decrypt (VM 1) boots, allocates its three frame buffers from
#      secure-video, decrypts the first frames into them and shares them
#      read-only with display, which is not running yet;
#   2. infotainment (VM 3) boots with frame 0's handle on its command line
#      (rmem.handle=; iomem=relaxed for its /dev/mem reads) and first tries
#      to retrieve it: frame 0 is certainly still offered, since its
#      receiver has not even booted;
#   3. display (VM 2) boots once infotainment has tried, and the stream
#      flows; halfway, `rmemctl status` shows the broker's view;
#   4. each guest powers off: decrypt and display exit 0, infotainment 5
#      (its window accesses were isolation violations, each answered with
#      an external abort); rmemd stops on SIGTERM;
#   5. the summary table, from the guests' RMEM-DEMO-* lines and the VMMs'
#      --stats, and the verdict.
# Each guest's console (and its rmem-vmm's own lines) streams to L1's
# console as it comes, prefixed with its name ("decrypt: ..."); so does
# rmemd's ("rmemd: ..."). Kernel command line: rmem.frames=N (default 30),
# rmem.framesize=BYTES (default rmem-demo's, 8 MiB).
# Markers:
#   RMEM-L1-RMEMD-UP yes|no
#   RMEM-L1-BOOTED <guest>               rmem-vmm started
#   RMEM-L1-HANDLE <handle>              what infotainment was given
#   RMEM-L1-STATUS rc=<n>                `rmemctl status`, halfway (its lines: "rmemctl: ...")
#   RMEM-L1-VMM-EXIT <guest> <rc>
#   RMEM-L1-RMEMD-EXIT <rc>              after SIGTERM
#   RMEM-L1-DMESG-WARNINGS <n>           kernel warnings in L1
#   RMEM-L1-DEMO-VERDICT PASS|FAIL: <why>
# The scenario fails (exit 1) unless the verdict is PASS.
KERNEL=/guest/Image
INITRD=/guest/l2.cpio
APPEND='console=ttyS0 quiet panic=-1 rmem.l2=playback'
DEV="type=48896"
TIMEOUT=300   # per wait: three nested guests share L1's two vCPUs
frames=30 framesize=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    rmem.frames=*) frames="${arg#rmem.frames=}" ;;
    rmem.framesize=*) framesize="${arg#rmem.framesize=}" ;;
  esac
done
VMM_TIMEOUT=$((900 + frames * 10))  # per guest
CR=$(printf '\r')
why=""  # the reasons the verdict fails, "; "-separated

. /scenarios/lib/wait.sh
failed() { why="${why:+$why; }$*"; }

# stream NAME: each line of stdin to the console as "NAME: line" the moment
# it comes (a program that prefixes its own lines with "NAME: " is not
# prefixed twice), and to /tmp/NAME.log as it was.
stream() {
  while IFS= read -r line; do
    line=${line%"$CR"}
    echo "$1: ${line#"$1: "}"
    echo "$line" >>"/tmp/$1.log"
  done
}

# launch NAME COMMAND...: runs COMMAND in the background, its stdout and
# stderr streamed (stream NAME); its pid lands in /tmp/NAME.pid, its exit
# status in /tmp/NAME.rc once it ended.
launch() {
  name=$1
  shift
  : >"/tmp/$name.log"
  rm -f "/tmp/$name.pid" "/tmp/$name.rc"
  (
    "$@" 2>&1 &
    echo $! >"/tmp/$name.pid"
    wait $!
    echo $? >"/tmp/$name.rc"
  ) | stream "$name" &
  eval "stream_$name=$!"
  wait_for 10 test -s "/tmp/$name.pid"
}
said() { grep -q -- "$2" "/tmp/$1.log" 2>/dev/null; }
running() { eval "kill -0 \$stream_$1" 2>/dev/null; }
ended() { ! running "$1"; }
said_or_ended() { said "$1" "$2" || ended "$1"; }
# awaited NAME PATTERN: waits (up to $TIMEOUT) until NAME says PATTERN, or
# ended without saying it (then the verdict fails and it returns 1).
awaited() {
  wait_for $TIMEOUT said_or_ended "$1" "$2"
  said "$1" "$2" && return 0
  echo "l1: $1 never said '$2' ($(running "$1" && echo still running || echo it ended)); L1's kernel log ends:"
  dmesg | tail -n 60 | sed 's/^/l1: dmesg: /'
  failed "$1 never said '$2'"
  return 1
}
# finish NAME: waits until NAME's command ended and its output is through;
# prints its exit status.
finish() {
  eval "wait \$stream_$1"
  rc=$(cat "/tmp/$1.rc" 2>/dev/null || echo none)
  [ "$1" = rmemd ] && echo "RMEM-L1-RMEMD-EXIT $rc" || echo "RMEM-L1-VMM-EXIT $1 $rc"
}
# boot NAME ROLE [APPEND...]: rmem-vmm boots the guest (rmem-demo's role ROLE).
boot() {
  name=$1 role=$2
  shift 2
  launch "$name" rmem-vmm --kernel $KERNEL --initrd $INITRD --memory 192 --cpus 1 \
    --timeout $VMM_TIMEOUT --stats --device "vhost-user,socket=/tmp/rmemd/$name.sock,$DEV" \
    --append "$APPEND rmem.role=$role rmem.frames=$frames ${framesize:+rmem.framesize=$framesize} $*"
  echo "RMEM-L1-BOOTED $name"
}

# field LOG MARKER KEY: KEY's value in the last MARKER line of /tmp/LOG.log.
field() {
  grep -- "$2 " "/tmp/$1.log" | tail -n 1 | sed -n "s/.* $3=\([^ ]*\).*/\1/p"
}
# vmm_value NAME TEXT: the number after "TEXT" in NAME's rmem-vmm lines.
vmm_value() {
  grep -- "rmem-vmm: $2" "/tmp/$1.log" | tail -n 1 | sed -n "s/.*$2 *\([0-9][0-9]*\).*/\1/p"
}
# expect LABEL GOT WANT: the verdict fails unless GOT is WANT.
expect() { [ "$2" = "$3" ] || failed "$1: $2, want $3"; }

insmod /lib/rmem/rmem_carveout.ko || { echo "l1: insmod rmem_carveout failed"; exit 1; }
mkdir -p /tmp/rmemd
sed 's|/run/rmemd|/tmp/rmemd|' /etc/rmemd/example.toml >/tmp/rmemd.toml
launch rmemd rmemd --fdt /sys/firmware/fdt --config /tmp/rmemd.toml
if wait_for 20 test -S /tmp/rmemd/infotainment.sock; then
  echo "RMEM-L1-RMEMD-UP yes"
else
  echo "RMEM-L1-RMEMD-UP no"
  exit 1
fi

boot decrypt decrypt
handle=none
if awaited decrypt 'RMEM-DEMO-SHARE frame=0 '; then
  handle=$(field decrypt RMEM-DEMO-SHARE handle)
else
  # There is no stream: stop decrypt, so that nothing waits for it.
  running decrypt && kill -TERM "$(cat /tmp/decrypt.pid)"
fi
echo "RMEM-L1-HANDLE ${handle:-none}"
boot infotainment infotainment "rmem.handle=${handle:-none} iomem=relaxed"
# display comes up only once frame 0's offer has met the leaked handle.
awaited infotainment 'RMEM-DEMO-[A-Z-]* kind=leaked-handle'
boot display display

status_rc=none
if awaited decrypt 'RMEM-DEMO-HALFWAY'; then
  # The broker's own view while frames flow (not judged here yet).
  rmemctl --control /tmp/rmemd/control status >/tmp/status.out 2>&1
  status_rc=$?
  sed 's/^/rmemctl: /' /tmp/status.out
fi
echo "RMEM-L1-STATUS rc=$status_rc"

finish infotainment
finish decrypt
# display ends with the last frame decrypt got back; had decrypt failed, it
# would wait for frames that never come.
if ! wait_for 120 ended display; then
  echo "l1: display still runs 120 s after decrypt ended: stopping it"
  kill -TERM "$(cat /tmp/display.pid)"
fi
finish display
kill -TERM "$(cat /tmp/rmemd.pid)"
finish rmemd
warnings=$(dmesg | grep -c -E 'WARNING:|BUG:|Oops|Call trace:')
echo "RMEM-L1-DMESG-WARNINGS $warnings"

# --- The summary -------------------------------------------------------------
D=RMEM-DEMO-DECRYPT-DONE S=RMEM-DEMO-DISPLAY-DONE I=RMEM-DEMO-INFOTAINMENT-DONE
decrypted=$(field decrypt $D decrypted)
shown=$(field display $S shown)
verified=$(field display $S verified)
checksum=$(field display $S checksum_failures)
header=$(field display $S header_failures)
order=$(field display $S out_of_order)
w_tried=$(field display $S write_attempts)
w_refused=$(field display $S write_refused)
grants=$(field display $S writable_grants)
attempts=$(field infotainment $I attempts)
denied=$(field infotainment $I denied)
not_denied=$(field infotainment $I not_denied)
offers=$(field infotainment $I offers_seen)
faults=$(field infotainment $I window_faults)
host_bytes=0 vmm_exits=""
for g in decrypt display infotainment; do
  b=$(vmm_value $g "stats: shared memory bytes accessed by the VMM:")
  [ -n "$b" ] || failed "$g: its rmem-vmm printed no shared memory byte count"
  host_bytes=$((host_bytes + ${b:-0}))
  vmm_exits="$vmm_exits${vmm_exits:+, }$g $(cat /tmp/$g.rc 2>/dev/null || echo none)"
done
violations=$(vmm_value infotainment "isolation violations:")
# Isolation failures: anything that should have been refused and was not,
# any frame that arrived other than intact, any VMM that did not end as
# its guest should.
iso=0
for n in "$grants" "$not_denied" "$offers" "$checksum" "$header" "$order" \
         "$(( ${w_tried:-0} - ${w_refused:-0} ))"; do
  iso=$((iso + ${n:-1}))
done
[ "$(cat /tmp/decrypt.rc 2>/dev/null)" = 0 ] || iso=$((iso + 1))
[ "$(cat /tmp/display.rc 2>/dev/null)" = 0 ] || iso=$((iso + 1))
{ [ "$(cat /tmp/infotainment.rc 2>/dev/null)" = 5 ] && [ "${violations:-0}" = "${faults:-x}" ]; } ||
  iso=$((iso + 1))

expect "frames decrypted" "$decrypted" "$frames"
expect "frames shown" "$shown" "$frames"
expect "frames verified" "$verified" "$frames"
expect "isolation failures" "$iso" 0
expect "frame bytes the host copied" "$host_bytes" 0
expect "infotainment attempts denied" "$denied" "${attempts:-none}"
for g in decrypt display infotainment; do
  expect "$g's rmem-demo" "$(grep 'RMEM-L2-DEMO-EXIT' /tmp/$g.log | sed -n 's/.*rc=//p')" 0
  expect "$g's kernel warnings" "$(grep 'RMEM-L2-DEMO-WARNINGS' /tmp/$g.log | sed -n 's/.* //p')" 0
done
expect "rmemd's exit on SIGTERM" "$(cat /tmp/rmemd.rc 2>/dev/null)" 0
expect "L1 kernel warnings" "$warnings" 0
[ "$(cat /tmp/infotainment.rc 2>/dev/null)" = 5 ] ||
  failed "infotainment's VMM exit $(cat /tmp/infotainment.rc 2>/dev/null), want 5"
[ "${violations:-0}" = "${faults:-x}" ] ||
  failed "infotainment's VMM counted ${violations:-0} violations, the guest ${faults:-no} window faults"

row() { printf '%-44s %s\n' "$1" "$2"; }
size=$(field decrypt RMEM-DEMO-DECRYPT-START frame_size)
if [ -z "$size" ]; then size="${framesize:-8M} bytes (?)"
elif [ $((size % 1048576)) = 0 ]; then size="$((size >> 20)) MiB"
else size="$((size >> 10)) KiB"; fi
echo "==================== secure playback: $frames frames of $size ===================="
row "frames decrypted / shown / checksum failures" \
    "${decrypted:-?} / ${shown:-?} / ${checksum:-?}   (verified ${verified:-?}; header failures ${header:-?}, out of order ${order:-?})"
row "frames/s" "$(field decrypt $D fps)   (decrypt's clock, first to last frame display gave back)"
row "share->display latency, median / p99" \
    "$(field decrypt $D latency_median_ms) ms / $(field decrypt $D latency_p99_ms) ms   (SHARE to RETRIEVED on decrypt's clock, $(field decrypt $D latency_frames) frames shared while display was up)"
row "display write attempts refused" \
    "${w_refused:-?} / ${w_tried:-?}   (writable mapping, mprotect, store; per frame)"
row "infotainment attempts denied" \
    "${denied:-?} / ${attempts:-?}   (leaked handle $(field infotainment $I leaked-handle), secure-video $(field infotainment $I secure-video), quota $(field infotainment $I quota), shared-memory window $(field infotainment $I window); frames offered to it ${offers:-?})"
row "frame bytes the host copied" \
    "$host_bytes   (rmem-vmm accessed $host_bytes bytes of shared memory for guests; rmemd only scrubs)"
row "isolation failures" "$iso"
row "VMM exits" "$vmm_exits   (infotainment: ${violations:-0} violations, its own count ${faults:-?})"
row "rmemctl status (halfway)" "rc=$status_rc (shown above, not judged)"
if [ -z "$why" ]; then
  row "verdict" "PASS"
  echo "RMEM-L1-DEMO-VERDICT PASS"
  exit 0
fi
row "verdict" "FAIL"
echo "RMEM-L1-DEMO-VERDICT FAIL: $why"
exit 1
