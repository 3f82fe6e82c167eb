#!/bin/bash
# run-guest.sh - boot the small Linux e2e guest in the root's QEMU 11.1 with vfio-user-pci devices
# (QEMU's real vfio-user client) and run one guest script; bounded in time.
#
# usage: run-guest.sh [options]
#   --vfu SOCKET          a vfio-user-pci device on this UNIX socket (repeatable: vfu0, vfu1, ...)
#   --disk IMG[,readonly=on][,direct=on][,aio=threads|io_uring|native]
#                         QEMU's own in-process virtio-blk-pci (disable-legacy=on, so PCI id
#                         0x1af4:0x1042 like vfud's): the baseline without vfio-user (repeatable);
#                         direct=on is the file's cache.direct (O_DIRECT)
#   --vhost-user-blk SOCKET  a vhost-user-blk-pci device on a vhost-user backend's socket (e.g.
#                         qemu-storage-daemon --export type=vhost-user-blk); needs --mem shared
#   --script FILE         guest script, run by /init as /test.sh (default guest/pci-list.sh); all
#                         of guest/*.sh are in the guest's /guest/ too
#   --env K=V             variable exported to the guest script (repeatable)
#   --file PATH           host file copied into the guest as /data/<basename> (repeatable)
#   --mem shared|private  shared (default): guest RAM is memory-backend-memfd,share=on, so DMA_MAP
#                         carries fds; private: plain RAM, the server must use DMA_READ/DMA_WRITE
#   --mem-size SIZE       guest RAM (default 512M)        --smp N  vCPUs (default 1)
#   --fio                 add the fio layer to the initramfs (for guest/blk-perf.sh)
#   --timeout S           hard limit for the whole QEMU run (default 300); the guest script gets
#                         S-20 s of it (VFUD_GUEST_TIMEOUT) so it fails cleanly first
#   --trace PATTERN       QEMU trace events, e.g. 'vfio_user*' (repeatable), written to LOG.trace
#   --log FILE            serial console log (default $VFUD_E2E_DIR/logs/guest-DATE-PID.log);
#                         FILE.cmd gets the QEMU command line, FILE.stderr QEMU's stderr
#   --qemu-arg ARG        extra QEMU argument (repeatable)
#   --verbose             kernel loglevel 7 (default 4)
# Prints the guest's "RESULT k=v ..." lines as they come, then "HOST k=v ..." lines.
# Exit: 0 the guest script succeeded (RESULT status=ok and QEMU exited 0); 1 guest failure or no
# result; 124 timeout; 2 usage error or missing prerequisites.
# Env: VFUD_E2E_DIR, VFUD_ACCEL=auto|kvm|tcg, VFUD_CPU (default max under TCG, host under KVM).
set -euo pipefail
E2E_TAG=run-guest
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
bad() { echo "run-guest.sh: $*" >&2; exit 2; }

VFUS=() DISKS=() VHOSTS=() ENVS=() FILES=() TRACES=() XARGS=()
SCRIPT=$E2E_HERE/guest/pci-list.sh MEM=shared MEMSZ=512M SMP=1 FIO=0 TMO=300 LOG='' VERBOSE=0
while [ $# -gt 0 ]; do
  case $1 in
    --vfu | --disk | --vhost-user-blk | --script | --env | --file | --mem | --mem-size | --smp | --timeout | --trace | --log | --qemu-arg)
      [ $# -ge 2 ] || bad "$1 needs a value"
      ;;&
    --vfu) VFUS+=("$2"); shift 2 ;;
    --disk) DISKS+=("$2"); shift 2 ;;
    --vhost-user-blk) VHOSTS+=("$2"); shift 2 ;;
    --script) SCRIPT=$2; shift 2 ;;
    --env) ENVS+=("$2"); shift 2 ;;
    --file) FILES+=("$2"); shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --mem-size) MEMSZ=$2; shift 2 ;;
    --smp) SMP=$2; shift 2 ;;
    --fio) FIO=1; shift ;;
    --timeout) TMO=$2; shift 2 ;;
    --trace) TRACES+=("$2"); shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --qemu-arg) XARGS+=("$2"); shift 2 ;;
    --verbose) VERBOSE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) bad "unknown option $1 (see --help)" ;;
  esac
done
case $MEM in shared | private) ;; *) bad "--mem must be shared or private" ;; esac
if ! [[ $TMO =~ ^[0-9]+$ ]] || [ "$TMO" -lt 10 ]; then bad "--timeout must be a whole number of seconds >= 10"; fi
[ -f "$SCRIPT" ] || bad "no guest script $SCRIPT"
for s in "${VFUS[@]}"; do [ -S "$s" ] || bad "--vfu $s: not a UNIX socket (is the server running?)"; done
for f in "${FILES[@]}"; do [ -f "$f" ] || bad "--file $f: no such file"; done
[ -f "$E2E_SETUP_STAMP" ] || { echo "run-guest.sh: no trixie root at $E2E_ROOT: run $E2E_HERE/setup.sh" >&2; exit 2; }
"$E2E_HERE/build-guest.sh" 2>/dev/null || { echo "run-guest.sh: build-guest.sh failed; run it to see why" >&2; exit 2; }

ACCEL=$(e2e_accel)
if [ "$ACCEL" = kvm ]; then CPU=${VFUD_CPU:-host}; else CPU=${VFUD_CPU:-max}; fi
if [ -z "$LOG" ]; then
  mkdir -p "$E2E_DIR/logs"
  LOG=$E2E_DIR/logs/guest-$(date +%Y%m%d-%H%M%S)-$$.log
  # keep the newest 50 default logs
  # (no match is fine: pipefail must not end the script on an empty folder)
  { ls -1t "$E2E_DIR"/logs/guest-*.log 2>/dev/null || true; } | tail -n +50 | while read -r old; do
    rm -f "$old" "$old".cmd "$old".stderr "$old".trace
  done
fi
mkdir -p "$(dirname "$LOG")"

QPID='' TPID=''
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vfud-run-guest.XXXXXX")
# shellcheck disable=SC2317  # (reached through the trap)
cleanup() {
  # QPID is `timeout`, which passes the signal on to QEMU; TPID is the console reader
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
    kill -TERM "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
  fi
  if [ -n "$TPID" ] && kill -0 "$TPID" 2>/dev/null; then kill -TERM "$TPID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "HOST status=interrupted" ; exit 143' INT TERM

# ---------- per-run initramfs layer: /test.sh, /test.env, /guest/*.sh, /data/* ----------
L=$WORK/layer
mkdir -p "$L/guest" "$L/data"
cp "$E2E_HERE"/guest/*.sh "$L/guest/"
cp "$SCRIPT" "$L/test.sh"
{
  printf 'export VFUD_GUEST_TIMEOUT=%s\n' "$((TMO > 40 ? TMO - 20 : TMO / 2))"
  for e in "${ENVS[@]}"; do
    k=${e%%=*}
    [[ $e == *=* && $k =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || bad "--env $e: want NAME=VALUE"
    v=${e#*=}
    printf "export %s='%s'\n" "$k" "${v//\'/\'\\\'\'}"
  done
} > "$L/test.env"
for f in "${FILES[@]}"; do
  b=$(basename "$f")
  [ -e "$L/data/$b" ] && bad "--file $f: a file named $b was already added"
  cp "$f" "$L/data/$b"
done
# uncompressed: the layer is mostly random test data
(cd "$L" && find . -mindepth 1 | LC_ALL=C sort | bb cpio -o -H newc 2>/dev/null) > "$WORK/layer.cpio"
LAYERS=("$E2E_GUEST/base.cpio.zst")
[ "$FIO" = 1 ] && LAYERS+=("$E2E_GUEST/fio.cpio.zst")
cat "${LAYERS[@]}" "$WORK/layer.cpio" > "$WORK/initrd"

# ---------- QEMU command line ----------
LOGLEVEL=4
[ "$VERBOSE" = 1 ] && LOGLEVEL=7
APPEND="console=ttyS0 panic=-1 loglevel=$LOGLEVEL rdinit=/init tsc=reliable no_timer_check i8042.noaux i8042.nokbd"
MACH=q35,accel=$ACCEL
A=(-nodefaults -no-user-config -display none -monitor none -no-reboot
  -serial "file:$LOG"
  -cpu "$CPU" -smp "$SMP" -m "$MEMSZ"
  -kernel "$E2E_GUEST/vmlinux" -initrd "$WORK/initrd" -append "$APPEND")
if [ "$MEM" = shared ]; then
  A+=(-object "memory-backend-memfd,id=mem,size=$MEMSZ,share=on")
  MACH+=,memory-backend=mem
fi
A+=(-machine "$MACH")
i=0
for s in "${VFUS[@]}"; do
  A+=(-device "{\"driver\":\"vfio-user-pci\",\"id\":\"vfu$i\",\"socket\":{\"type\":\"unix\",\"path\":$(json_str "$s")}}")
  i=$((i + 1))
done
i=0
for d in "${DISKS[@]}"; do
  img=${d%%,*} ro=false direct=false aio=threads
  IFS=, read -ra opts <<<"${d#"$img"}"
  for o in "${opts[@]}"; do
    case $o in
      '') ;;
      readonly=on) ro=true ;;
      direct=on) direct=true ;;
      aio=threads | aio=io_uring | aio=native) aio=${o#aio=} ;;
      *) bad "--disk $d: unknown option $o (readonly=on, direct=on, aio=...)" ;;
    esac
  done
  [ -f "$img" ] || bad "--disk $img: no such file"
  A+=(-blockdev "{\"driver\":\"raw\",\"node-name\":\"disk$i\",\"read-only\":$ro,\"file\":{\"driver\":\"file\",\"filename\":$(json_str "$img"),\"read-only\":$ro,\"aio\":\"$aio\",\"cache\":{\"direct\":$direct}}}"
    -device "virtio-blk-pci,drive=disk$i,id=blk$i,disable-legacy=on")
  i=$((i + 1))
done
i=0
for s in "${VHOSTS[@]}"; do
  [ "$MEM" = shared ] || bad "--vhost-user-blk needs --mem shared (the backend maps guest RAM)"
  [ -S "$s" ] || bad "--vhost-user-blk $s: not a UNIX socket (is the backend running?)"
  A+=(-chardev "socket,id=vub$i,path=$s" -device "vhost-user-blk-pci,chardev=vub$i,id=vub$i,disable-legacy=on,num-queues=1")
  i=$((i + 1))
done
for t in "${TRACES[@]}"; do A+=(-trace "$t"); done
[ ${#TRACES[@]} -gt 0 ] && A+=(-D "$LOG.trace")
A+=("${XARGS[@]}")

qemu_cmd
printf '%q ' "${QEMU_CMD[@]}" "${A[@]}" > "$LOG.cmd"
echo >> "$LOG.cmd"
: > "$LOG"
T0=$EPOCHREALTIME
timeout -k 5 "$TMO" "${QEMU_CMD[@]}" "${A[@]}" < /dev/null > "$LOG.stderr" 2>&1 &
QPID=$!
# stream the console: print RESULT lines as they arrive; note when /init first spoke
(
  tail -n +1 -s 0.1 -f --pid="$QPID" "$LOG" 2>/dev/null | while IFS= read -r line; do
    line=${line%$'\r'}
    case $line in
      "RESULT init_uptime_s="*) echo "$EPOCHREALTIME" > "$WORK/t_init" ;;
    esac
    case $line in RESULT\ *) printf '%s\n' "$line" ;; esac
  done
) &
TPID=$!
QRC=0
wait "$QPID" || QRC=$?
QPID=
wait "$TPID" || true
TPID=
T1=$EPOCHREALTIME

awk -v a="$T0" -v b="$T1" 'BEGIN {printf "HOST host_total_s=%.3f\n", b - a}'
[ -f "$WORK/t_init" ] && awk -v a="$T0" -v b="$(cat "$WORK/t_init")" 'BEGIN {printf "HOST host_boot_to_init_s=%.3f\n", b - a}'
echo "HOST qemu_rc=$QRC accel=$ACCEL cpu=$CPU mem=$MEM log=$LOG"
if [ -s "$LOG.stderr" ]; then sed 's/^/HOST qemu_stderr: /' "$LOG.stderr" | head -40; fi
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
  echo "HOST status=timeout after ${TMO}s"
  tail -n 30 "$LOG" | sed 's/^/HOST console: /'
  exit 124
fi
if [ "$QRC" = 0 ] && grep -aq '^RESULT status=ok' "$LOG"; then
  echo "HOST status=ok"
  exit 0
fi
echo "HOST status=fail"
tail -n 30 "$LOG" | sed 's/^/HOST console: /'
exit 1
