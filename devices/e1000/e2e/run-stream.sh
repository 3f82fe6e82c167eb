#!/bin/bash
# run-stream.sh - e1000 end to end over the stream backend: a real QEMU 11.1 guest drives vfud's
# e1000 (netdev=stream,server=on); stream_peer.ts connects to that socket with QEMU's
# `-netdev stream` framing and answers ARP and ICMP echo for 10.0.2.2. The peer is stopped and
# restarted once before the guest boots (the server must accept a new peer).
#
# usage: devices/e1000/e2e/run-stream.sh [shared|private]. Needs tests/e2e/setup.sh done.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
MEM=${1:-shared}
W=$(mktemp -d /tmp/vfud-e1000-stream.XXXXXX)
VPID='' PPID2=''
cleanup() {
  [ -n "$PPID2" ] && kill "$PPID2" 2>/dev/null || true
  if [ -n "$VPID" ] && kill -0 "$VPID" 2>/dev/null; then kill -TERM "$VPID"; wait "$VPID" || true; fi
  if [ "${VFUD_E2E_KEEP:-0}" = 1 ] || [ "${OK:-0}" != 1 ]; then echo "work dir: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

deno run --allow-ffi --allow-read --allow-write --allow-env "$REPO/main.ts" \
  --socket-path="$W/vfud.sock" --device "e1000,netdev=stream,path=$W/net.sock,server=on" \
  --log-level=info 2> "$W/vfud.log" &
VPID=$!
for _ in $(seq 100); do [ -S "$W/vfud.sock" ] && [ -S "$W/net.sock" ] && break; sleep 0.1; done
[ -S "$W/net.sock" ] || { cat "$W/vfud.log"; echo "vfud did not start"; exit 1; }
# First peer connects and leaves; the second stays for the guest.
timeout 3 deno run --allow-all "$HERE/stream_peer.ts" "$W/net.sock" 10.0.2.2 1 > "$W/peer0.out" 2>&1 || true
deno run --allow-all "$HERE/stream_peer.ts" "$W/net.sock" 10.0.2.2 280 > "$W/peer.out" 2>&1 &
PPID2=$!

RC=0
"$REPO/tests/e2e/run-guest.sh" --vfu "$W/vfud.sock" --script "$HERE/guest-net.sh" \
  --env PEER_IP=10.0.2.2 --env PING_ONLY=1 --mem "$MEM" --timeout 240 \
  --log "$W/guest.log" | tee "$W/guest.out" || RC=$?
kill -TERM "$PPID2" 2>/dev/null || true
wait "$PPID2" || true
PPID2=''
cat "$W/peer0.out" "$W/peer.out"
kill -TERM "$VPID"
VRC=0
wait "$VPID" || VRC=$?
VPID=''
grep -E "peer|totals|WRN|ERR" "$W/vfud.log" | cut -c31- | sed 's/^/HOST vfud: /' || true

val() { grep -ho "$1=[^ ]*" "$W/guest.out" "$W/peer.out" | tail -1 | cut -d= -f2; }
fails=0
check() { if [ "$2" = "$3" ] && [ -n "$2" ]; then echo "CHECK $1 ok"; else echo "CHECK $1 FAILED ($2 vs $3)"; fails=$((fails + 1)); fi; }
check guest_status "$RC" 0
check ping "$(val ping)" ok
check ping_burst "$(val ping_burst)" 20
check vfud_exit "$VRC" 0
[ "$fails" = 0 ] && OK=1
[ "$fails" = 0 ]
