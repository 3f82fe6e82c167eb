#!/bin/bash
# run.sh - e1000 end to end: a real QEMU 11.1 guest (tests/e2e harness) drives vfud's e1000 with
# the unmodified Linux e1000 driver; vfud's tap backend is cabled to a kernel interface in a
# private network namespace (made here with unshare; the host's interfaces are never touched).
# Checks: driver binds, carrier, ping, 8 MiB TCP upload and download with md5 on both sides
# (exercises TSO, checksum offload, multi-descriptor frames, RX rings and interrupts).
#
# usage: devices/e1000/e2e/run.sh [shared|private]   (guest RAM: shared = fd-mapped DMA,
#        private = message-based DMA_READ/DMA_WRITE). Needs root and tests/e2e/setup.sh done.
# Exit 0 when every check passed. Env: VFUD_E2E_KEEP=1 keeps the work dir.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
if [ -z "${VFUD_E1000_NETNS:-}" ]; then
  exec unshare --net env VFUD_E1000_NETNS=1 bash "$0" "$@"
fi
MEM=${1:-shared}
SIZE=${VFUD_E1000_BYTES:-8388608}
W=$(mktemp -d /tmp/vfud-e1000-e2e.XXXXXX)
VPID='' PPID2=''
cleanup() {
  [ -n "$PPID2" ] && kill "$PPID2" 2>/dev/null || true
  if [ -n "$VPID" ] && kill -0 "$VPID" 2>/dev/null; then kill -TERM "$VPID"; wait "$VPID" || true; fi
  if [ "${VFUD_E2E_KEEP:-0}" = 1 ] || [ "${OK:-0}" != 1 ]; then echo "work dir: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

ip link set lo up
ip tuntap add dev vtap0 mode tap
ip addr add 10.0.2.2/24 dev vtap0
ip link set vtap0 up
head -c "$SIZE" /dev/urandom > "$W/up.bin"
head -c "$SIZE" /dev/urandom > "$W/down.bin"

deno run --allow-ffi --allow-read --allow-write --allow-env "$REPO/main.ts" \
  --socket-path="$W/vfud.sock" --device e1000,netdev=tap,ifname=vtap0 --log-level=info \
  2> "$W/vfud.log" &
VPID=$!
for _ in $(seq 100); do [ -S "$W/vfud.sock" ] && break; sleep 0.1; done
[ -S "$W/vfud.sock" ] || { cat "$W/vfud.log"; echo "vfud did not start"; exit 1; }
deno run --allow-all "$HERE/peer.ts" 10.0.2.2 "$SIZE" "$W/down.bin" > "$W/peer.out" 2>&1 &
PPID2=$!

RC=0
"$REPO/tests/e2e/run-guest.sh" --vfu "$W/vfud.sock" --script "$HERE/guest-net.sh" \
  --file "$W/up.bin" --env PEER_IP=10.0.2.2 --mem "$MEM" --timeout 300 \
  --log "$W/guest.log" | tee "$W/guest.out" || RC=$?
wait "$PPID2" || true
PPID2=''
cat "$W/peer.out"
ip -s link show vtap0 | sed 's/^/HOST tap: /'
kill -TERM "$VPID"
VRC=0
wait "$VPID" || VRC=$?
VPID=''
echo "HOST vfud_exit=$VRC"
grep -E "WRN|ERR|FTL" "$W/vfud.log" | head -20 | sed 's/^/HOST vfud: /' || true

val() { grep -ho "$1=[^ ]*" "$W/guest.out" "$W/peer.out" | head -1 | cut -d= -f2; }
fails=0
check() { if [ "$2" = "$3" ] && [ -n "$2" ]; then echo "CHECK $1 ok"; else echo "CHECK $1 FAILED ($2 vs $3)"; fails=$((fails + 1)); fi; }
check guest_status "$RC" 0
check driver "$(val e1000_driver)" e1000
check ping "$(val ping)" ok
check upload_md5 "$(val up_md5_guest)" "$(val up_md5_host)"
check download_md5 "$(val down_md5_guest)" "$(val down_md5_host)"
check vfud_exit "$VRC" 0
[ "$fails" = 0 ] && OK=1
[ "$fails" = 0 ]
