# Sourced by L2 scenarios: probe_normal_memory ADDR loads rmem_l2_probe.ko
# (tests/e2e/kmod/rmem_l2_probe, TEST ONLY) on the read-write page at guest
# physical ADDR and turns its results into markers:
#   RMEM-L2-PROBE-START <addr>
#   RMEM-L2-PROBE <probe> ok|fault|mismatch|unavailable <detail>
#                  for unaligned-load, dc-zva, ldxr-stxr
#   RMEM-L2-PROBE-CRASHED        the module died before it finished (an
#                                uncaught fault: its oops is on the console)
#   RMEM-L2-PROBE-INSMOD rc=<n>  0 iff every probe succeeded
# Returns insmod's status.
probe_normal_memory() {
  echo "RMEM-L2-PROBE-START $1"
  insmod /lib/rmem/rmem_l2_probe.ko "addr=$1"
  rc=$?
  dmesg | sed -n 's/.*rmem_l2_probe: RESULT /RMEM-L2-PROBE /p'
  dmesg | grep -q 'rmem_l2_probe: DONE' || echo "RMEM-L2-PROBE-CRASHED"
  echo "RMEM-L2-PROBE-INSMOD rc=$rc"
  return $rc
}
