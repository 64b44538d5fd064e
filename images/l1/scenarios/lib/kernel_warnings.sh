# What L1's kernel complained about during a scenario (a KVM WARN, say).
# Sourced, not a scenario: kernel_warnings_mark at the start, then
# kernel_warnings_report at the end prints
#   RMEM-L1-KERNEL-WARNINGS <n>, then each such line as RMEM-L1-KERNEL-WARNING <line>
# and returns 1 if there was any (tests/e2e/tap.py kernel_warnings_check).

kernel_warnings_mark() {
  kernel_warnings_start=$(dmesg | wc -l)
}

kernel_warnings_report() {
  dmesg | tail -n +$((kernel_warnings_start + 1)) | grep -E 'WARNING:|BUG:|Call trace:|Oops' \
    >/tmp/kernel-warnings
  echo "RMEM-L1-KERNEL-WARNINGS $(wc -l </tmp/kernel-warnings)"
  sed 's/^/RMEM-L1-KERNEL-WARNING /' /tmp/kernel-warnings
  [ ! -s /tmp/kernel-warnings ]
}
