# Waiting in L1 scenarios. Sourced, not a scenario.

wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds
  n=$(($1 * 5))
  shift
  while [ $n -gt 0 ]; do
    "$@" && return 0
    n=$((n - 1))
    sleep 0.2
  done
  return 1
}
