# net-arping.sh - the guest has two 82540EMs on one cable: vfud's (vfio-user, station address
# $VFUD_MAC) and QEMU's own in-process e1000 ($QEMU_MAC), whose `-netdev stream` is connected to
# vfud's stream backend. ARP duplicate-address probes (sender IP 0.0.0.0, which the kernel answers
# even though both NICs belong to this one host) go from each NIC to the other's address; every
# answer must come back from the other NIC's MAC. That moves frames through QEMU's stream framing
# in both directions, started from either side. Prints RESULT lines.
#
# Env: VFUD_MAC, QEMU_MAC (required), VFUD_IP (default 10.0.2.15), QEMU_IP (default 10.0.2.16).
. /guest/common.sh
VFUD_IP=${VFUD_IP:-10.0.2.15}
QEMU_IP=${QEMU_IP:-10.0.2.16}
ifname_of_mac() {
  for d in /sys/class/net/*; do [ "$(cat "$d/address")" = "$1" ] && { basename "$d"; return 0; }; done
  return 1
}
i=0
while ! A=$(ifname_of_mac "$VFUD_MAC") || ! B=$(ifname_of_mac "$QEMU_MAC"); do
  i=$((i + 1)); [ $i -gt 100 ] && { ls /sys/class/net; list_pci; fail "interfaces not found"; }; sleep 0.1
done
drv() { basename "$(readlink "/sys/class/net/$1/device/driver")"; }
echo "RESULT vfud_if=$A vfud_if_driver=$(drv "$A") qemu_if=$B qemu_if_driver=$(drv "$B")"
ip addr add "$VFUD_IP/24" dev "$A" && ip link set "$A" up || fail "setup $A"
ip link set "$B" up || fail "setup $B"
i=0
while [ "$(cat "/sys/class/net/$A/carrier")" != 1 ] || [ "$(cat "/sys/class/net/$B/carrier")" != 1 ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "no carrier"; sleep 0.1
done
echo "RESULT carrier=1"

# probe KEY IF IP MAC: DAD probes out of IF for IP; count replies from IP that carry MAC
probe() {
  timeout 30 arping -D -I "$2" -c 5 -w 15 "$3" > "/tmp/$1.out" 2>&1
  cat "/tmp/$1.out"
  local all ok
  all=$(grep -c "reply from $3" "/tmp/$1.out")
  ok=$(grep -ic "reply from $3 \[$4\]" "/tmp/$1.out")
  echo "RESULT ${1}_replies=$all ${1}_replies_from_mac=$ok"
  [ "$ok" -ge 1 ] && [ "$ok" = "$all" ] || fail "$1: $ok of $all replies from $4"
}
# QEMU's NIC -> vfud's NIC (through the stream cable into vfud's RX), the reply back through
# vfud's TX into QEMU's NIC
probe qemu_to_vfud "$B" "$VFUD_IP" "$VFUD_MAC"
# and the other way round
ip addr add "$QEMU_IP/24" dev "$B" || fail "ip addr $B"
probe vfud_to_qemu "$A" "$QEMU_IP" "$QEMU_MAC"
for n in "$A" "$B"; do
  S=/sys/class/net/$n/statistics
  k=vfud_if
  [ "$n" = "$B" ] && k=qemu_if
  echo "RESULT ${k}_rx=$(cat $S/rx_packets) ${k}_tx=$(cat $S/tx_packets) ${k}_rx_errors=$(cat $S/rx_errors) ${k}_tx_errors=$(cat $S/tx_errors)"
done
echo "RESULT net=ok"
