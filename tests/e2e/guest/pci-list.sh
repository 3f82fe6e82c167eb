# pci-list.sh - lists the guest's PCI functions (one RESULT line each); with VFUD_EXPECT_ID
# (vendor:device, e.g. 0x1af4:0x1042) fails unless such a function is present.
. /guest/common.sh
list_pci
if [ -n "${VFUD_EXPECT_ID:-}" ]; then
  bdf=$(find_pci "$VFUD_EXPECT_ID") || { echo "RESULT expect_found=0 want=$VFUD_EXPECT_ID"; exit 1; }
  echo "RESULT expect_found=1 bdf=$bdf"
fi
exit 0
