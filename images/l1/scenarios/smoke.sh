# L1 scenario "smoke": the SoC host booted and ran a scenario, and rmemd
# reads the carve-outs from the firmware this host was really booted with
# (the device tree QEMU built plus images/platform/rmem-carveouts.dtsi):
#   RMEM-L1-RMEMD-CHECK <exit> <rmemd --check-firmware's JSON>
json=$(rmemd --check-firmware --fdt /sys/firmware/fdt 2>&1)
echo "RMEM-L1-RMEMD-CHECK $? $json"
echo "RMEM-L1-OK smoke"
