# guest-arping.sh - the guest has two 82540EMs on one cable: vfud's (vfio-user, MAC $VFUD_MAC) and
# QEMU's own e1000 (MAC $QEMU_MAC) whose `-netdev stream` is connected to vfud's stream backend.
# ARP probes sent from QEMU's NIC must be answered through vfud's NIC, proving the stream
# framing interoperates with QEMU in both directions. Prints RESULT lines.
. /guest/common.sh
ifname_of_mac() {
  for d in /sys/class/net/*; do [ "$(cat "$d/address")" = "$1" ] && { basename "$d"; return 0; }; done
  return 1
}
i=0
while ! A=$(ifname_of_mac "$VFUD_MAC") || ! B=$(ifname_of_mac "$QEMU_MAC"); do
  i=$((i + 1)); [ $i -gt 100 ] && fail "interfaces not found"; sleep 0.1
done
echo "RESULT vfud_if=$A qemu_if=$B"
ip addr add 10.0.2.15/24 dev "$A" && ip link set "$A" up || fail "setup $A"
ip link set "$B" up || fail "setup $B"
i=0
while [ "$(cat /sys/class/net/$A/carrier)" != 1 ] || [ "$(cat /sys/class/net/$B/carrier)" != 1 ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "no carrier"; sleep 0.1
done
# Duplicate address detection probes (sender IP 0.0.0.0): the kernel answers them for its own
# address even though both NICs belong to this one host.
arping -D -I "$B" -c 5 -w 15 10.0.2.15 > /tmp/arping.out 2>&1
cat /tmp/arping.out
n=$(grep -c "Unicast reply from 10.0.2.15" /tmp/arping.out)
echo "RESULT arp_replies=$n"
[ "$n" -ge 1 ] || fail "no ARP reply through vfud"
S=/sys/class/net/$A/statistics
echo "RESULT vfud_if_rx=$(cat $S/rx_packets) vfud_if_tx=$(cat $S/tx_packets)"
