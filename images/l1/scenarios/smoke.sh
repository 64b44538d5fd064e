# L1 scenario "smoke": the SoC host booted and ran a scenario.
echo "RMEM-L1-OK smoke"
