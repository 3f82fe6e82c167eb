# guest-net.sh - e1000 acceptance check inside the e2e guest (busybox ash), run as /test.sh by
# tests/e2e/run-guest.sh. Env: PEER_IP (host side of the cable), GUEST_IP (default 10.0.2.15),
# UP_FILE (default /data/up.bin: sent to PEER_IP:5001), DOWN_PORT (default 5002: read until EOF),
# PING_ONLY=1 (stop after the ping).
# Prints RESULT lines: driver binding, carrier, MAC, ping, transfer times and md5s, NIC counters.
. /guest/common.sh
PEER_IP=${PEER_IP:?PEER_IP not set}
GUEST_IP=${GUEST_IP:-10.0.2.15}
UP_FILE=${UP_FILE:-/data/up.bin}

BDF=$(find_pci 0x8086:0x100e) || fail "no 8086:100e function"
i=0
while [ "$(pci_driver "$BDF")" != e1000 ] || [ -z "$(netdev_of "$BDF")" ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "e1000 did not bind ($(pci_driver "$BDF"))"; sleep 0.1
done
IF=$(netdev_of "$BDF")
echo "RESULT e1000_bdf=$BDF e1000_driver=$(pci_driver "$BDF") e1000_if=$IF e1000_mac=$(cat /sys/class/net/$IF/address)"
ip addr add "$GUEST_IP/24" dev "$IF" || fail "ip addr"
ip link set "$IF" up || fail "ip link up"
i=0
while [ "$(cat /sys/class/net/$IF/carrier 2>/dev/null)" != 1 ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "no carrier on $IF"; sleep 0.1
done
echo "RESULT carrier_after_s=$(awk -v n=$i 'BEGIN {printf "%.1f", n / 10}')"
ping -c 3 -W 3 "$PEER_IP" > /tmp/ping.out 2>&1 || { cat /tmp/ping.out; fail "ping $PEER_IP"; }
echo "RESULT ping=ok ping_rtt=$(grep -o 'min/avg/max = [0-9./]*' /tmp/ping.out | cut -d' ' -f3)"
counters() {
  S=/sys/class/net/$IF/statistics
  echo "RESULT if_rx_packets=$(cat $S/rx_packets) if_tx_packets=$(cat $S/tx_packets) if_rx_errors=$(cat $S/rx_errors) if_tx_errors=$(cat $S/tx_errors) if_rx_missed=$(cat $S/rx_missed_errors) if_rx_dropped=$(cat $S/rx_dropped)"
}
if [ "${PING_ONLY:-0}" = 1 ]; then
  ping -c 20 -i 0.2 -s 1400 -W 3 "$PEER_IP" > /tmp/ping2.out 2>&1 || { cat /tmp/ping2.out; fail "ping burst"; }
  echo "RESULT ping_burst=$(grep -o '[0-9]* packets received' /tmp/ping2.out | cut -d' ' -f1)"
  counters
  echo "RESULT net=ok"
  exit 0
fi

if [ -f "$UP_FILE" ]; then
  echo "RESULT up_md5_guest=$(md5_of "$UP_FILE")"
  t0=$(now)
  nc -w 10 "$PEER_IP" 5001 < "$UP_FILE" || fail "upload"
  s=$(elapsed "$t0")
  echo "RESULT up_s=$s up_MBps=$(mbps "$(wc -c < "$UP_FILE")" "$s")"
fi
t0=$(now)
nc -w 10 "$PEER_IP" "${DOWN_PORT:-5002}" > /tmp/down.bin || fail "download"
s=$(elapsed "$t0")
echo "RESULT down_s=$s down_bytes=$(wc -c < /tmp/down.bin) down_md5_guest=$(md5_of /tmp/down.bin) down_MBps=$(mbps "$(wc -c < /tmp/down.bin)" "$s")"
counters
ip link set "$IF" down
echo "RESULT net=ok"
