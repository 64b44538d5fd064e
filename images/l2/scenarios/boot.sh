# L2 scenario "boot": the guest came up; report what the VMM gave it.
echo "RMEM-L2-OK boot"
echo "RMEM-L2-CPUS $(grep -c '^processor' /proc/cpuinfo)"
echo "RMEM-L2-MEMKB $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
echo "RMEM-L2-UPTIME $(cut -d" " -f1 /proc/uptime)"
