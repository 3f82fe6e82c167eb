#!/bin/bash
# run-qemu-stream.sh - interop of vfud's stream backend with QEMU's own `-netdev stream`: one
# QEMU 11.1 guest gets vfud's e1000 (vfio-user, netdev=stream,server=on) and QEMU's in-process
# e1000 whose netdev connects to the same socket; the guest ARPs from one NIC to the other.
# usage: devices/e1000/e2e/run-qemu-stream.sh. Needs tests/e2e/setup.sh done.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=$(mktemp -d /tmp/vfud-e1000-qstream.XXXXXX)
VPID=''
cleanup() {
  if [ -n "$VPID" ] && kill -0 "$VPID" 2>/dev/null; then kill -TERM "$VPID"; wait "$VPID" || true; fi
  if [ "${VFUD_E2E_KEEP:-0}" = 1 ] || [ "${OK:-0}" != 1 ]; then echo "work dir: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
VMAC=02:00:00:00:0a:01 QMAC=52:54:00:00:00:99
deno run --allow-ffi --allow-read --allow-write --allow-env "$REPO/main.ts" \
  --socket-path="$W/vfud.sock" --device "e1000,netdev=stream,path=$W/net.sock,mac=$VMAC" \
  2> "$W/vfud.log" &
VPID=$!
for _ in $(seq 100); do [ -S "$W/vfud.sock" ] && [ -S "$W/net.sock" ] && break; sleep 0.1; done
RC=0
"$REPO/tests/e2e/run-guest.sh" --vfu "$W/vfud.sock" --script "$HERE/guest-arping.sh" \
  --env VFUD_MAC=$VMAC --env QEMU_MAC=$QMAC --timeout 200 --log "$W/guest.log" \
  --qemu-arg -netdev --qemu-arg "stream,id=n1,server=off,addr.type=unix,addr.path=$W/net.sock" \
  --qemu-arg -device --qemu-arg "e1000,netdev=n1,mac=$QMAC" | tee "$W/guest.out" || RC=$?
kill -TERM "$VPID"
VRC=0
wait "$VPID" || VRC=$?
VPID=''
grep -E "peer|totals|WRN|ERR" "$W/vfud.log" | cut -c31- | sed 's/^/HOST vfud: /' || true
echo "HOST vfud_exit=$VRC"
[ "$RC" = 0 ] && [ "$VRC" = 0 ] && OK=1
[ "${OK:-0}" = 1 ]
