# net-e1000.sh - e1000 acceptance check inside the e2e guest (busybox ash), run as /test.sh by
# run-guest.sh: the unmodified Linux e1000 driver must bind to the 82540EM (8086:100e), get
# carrier, take an address, ping the far end of the cable without loss and (optionally) move a
# file each way over TCP.
#
# Env: PEER_IP (the far end, required), GUEST_IP (default 10.0.2.15, /24), EXPECT_MAC (fail if the
#   interface has another station address), PING_COUNT (default 5), BURST_COUNT and BURST_SIZE
#   (a second ping run with -s BURST_SIZE, default none), TCP=1: send UP_FILE (default
#   /data/up.bin) to PEER_IP:UP_PORT (default 5001), then read PEER_IP:DOWN_PORT (default 5002)
#   until EOF into /tmp/down.bin. TCP_TIMEOUT (default 90 s) bounds each transfer.
# Prints RESULT lines (driver, interface, MAC, address, carrier, ping counts, transfer sizes,
# times and md5s, interface counters) and "RESULT net=ok" at the end.
. /guest/common.sh
PEER_IP=${PEER_IP:?PEER_IP not set}
GUEST_IP=${GUEST_IP:-10.0.2.15}
UP_FILE=${UP_FILE:-/data/up.bin}
TCP_TIMEOUT=${TCP_TIMEOUT:-90}

BDF=$(find_pci 0x8086:0x100e) || { list_pci; fail "no 8086:100e function"; }
i=0
while [ "$(pci_driver "$BDF")" != e1000 ] || [ -z "$(netdev_of "$BDF")" ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "e1000 did not bind ($(pci_driver "$BDF"))"; sleep 0.1
done
IF=$(netdev_of "$BDF")
MAC=$(cat "/sys/class/net/$IF/address")
echo "RESULT e1000_bdf=$BDF e1000_id=$(cat /sys/bus/pci/devices/$BDF/vendor):$(cat /sys/bus/pci/devices/$BDF/device) e1000_driver=$(pci_driver "$BDF") e1000_if=$IF e1000_mac=$MAC"
[ -z "${EXPECT_MAC:-}" ] || [ "$MAC" = "$EXPECT_MAC" ] || fail "MAC $MAC, want $EXPECT_MAC"

ip addr add "$GUEST_IP/24" dev "$IF" || fail "ip addr add"
ip link set "$IF" up || fail "ip link set up"
i=0
while [ "$(cat "/sys/class/net/$IF/carrier" 2>/dev/null)" != 1 ]; do
  i=$((i + 1)); [ $i -gt 100 ] && fail "no carrier on $IF"; sleep 0.1
done
echo "RESULT carrier=1 carrier_after_s=$(awk -v n=$i 'BEGIN {printf "%.1f", n / 10}')"
ADDR=$(ip -4 addr show dev "$IF" | awk '$1 == "inet" {print $2; exit}')
echo "RESULT guest_addr=$ADDR operstate=$(cat "/sys/class/net/$IF/operstate")"

# ping_run KEY ARGS...: one ping run; RESULT KEY_tx, KEY_rx, KEY_loss (percent)
ping_run() {
  local key=$1
  shift
  timeout 60 ping "$@" "$PEER_IP" > "/tmp/$key.out" 2>&1
  cat "/tmp/$key.out"
  local tx rx loss
  tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "/tmp/$key.out")
  rx=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' "/tmp/$key.out")
  loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "/tmp/$key.out")
  echo "RESULT ${key}_tx=${tx:-0} ${key}_rx=${rx:-0} ${key}_loss=${loss:-100} ${key}_rtt=$(grep -o 'min/avg/max = [0-9./]*' "/tmp/$key.out" | cut -d' ' -f3)"
  [ -n "$tx" ] && [ "$tx" = "$rx" ] && [ "$tx" -gt 0 ] || fail "$key: ${rx:-0} of ${tx:-0} answered"
}
ping_run ping -c "${PING_COUNT:-5}" -W 5
if [ -n "${BURST_COUNT:-}" ]; then
  ping_run burst -c "$BURST_COUNT" -i 0.2 -s "${BURST_SIZE:-56}" -W 5
fi

counters() {
  S=/sys/class/net/$IF/statistics
  echo "RESULT if_rx_packets=$(cat $S/rx_packets) if_tx_packets=$(cat $S/tx_packets) if_rx_errors=$(cat $S/rx_errors) if_tx_errors=$(cat $S/tx_errors) if_rx_missed=$(cat $S/rx_missed_errors) if_rx_dropped=$(cat $S/rx_dropped)"
}

if [ "${TCP:-0}" = 1 ]; then
  [ -f "$UP_FILE" ] || fail "no $UP_FILE"
  echo "RESULT up_bytes_guest=$(wc -c < "$UP_FILE") up_md5_guest=$(md5_of "$UP_FILE")"
  t0=$(now)
  timeout "$TCP_TIMEOUT" nc -w 10 "$PEER_IP" "${UP_PORT:-5001}" < "$UP_FILE" > /dev/null ||
    fail "upload to $PEER_IP:${UP_PORT:-5001}"
  s=$(elapsed "$t0")
  echo "RESULT up_s=$s up_MBps=$(mbps "$(wc -c < "$UP_FILE")" "$s")"
  t0=$(now)
  timeout "$TCP_TIMEOUT" nc -w 10 "$PEER_IP" "${DOWN_PORT:-5002}" < /dev/null > /tmp/down.bin ||
    fail "download from $PEER_IP:${DOWN_PORT:-5002}"
  s=$(elapsed "$t0")
  n=$(wc -c < /tmp/down.bin)
  echo "RESULT down_s=$s down_bytes_guest=$n down_md5_guest=$(md5_of /tmp/down.bin) down_MBps=$(mbps "$n" "$s")"
fi
counters
ip link set "$IF" down
echo "RESULT net=ok"
