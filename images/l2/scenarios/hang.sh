# L2 scenario "hang": says it is up, then never ends on its own, so that the
# VMM's timeout and signal handling can be tested from L1.
echo "RMEM-L2-HANG"
while true; do sleep 3600; done
