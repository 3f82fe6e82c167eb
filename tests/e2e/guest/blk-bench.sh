# blk-bench.sh - fio jobs against every virtio-blk disk of the guest (busybox ash + fio).
# DESTRUCTIVE: the disks are written.
#
# Env:
#   VFUD_BENCH_JOBS   space-separated jobs (default: all of them, in this order):
#                     randread_qd1 randread_qd16 randread_qd32 randwrite_qd16 seqread_1m seqwrite_1m
#   VFUD_BENCH_S      seconds per job (default 5)
#   VFUD_BENCH_SPAN   bytes of each disk the jobs use (default: all of it, at most 1 GiB)
#   VFUD_BENCH_DISKS  how many disks to expect (default 1); with more, every job runs on all of
#                     them at once (one fio job per disk) and the results are their sums
# Prints per job: RESULT <job>_iops=N <job>_MBps=X <job>_lat_us=Y (summed / averaged over disks)
. /guest/common.sh
command -v fio >/dev/null || fail "no fio in the guest (run-guest.sh --fio)"
WANT=${VFUD_BENCH_DISKS:-1}
DEVS=''
i=0
while [ $i -lt 100 ]; do
  DEVS=''
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x1af4:0x1042 ] || continue
    b=$(blockdev_of "$(basename "$d")") && DEVS="$DEVS /dev/$b"
  done
  [ "$(echo $DEVS | wc -w)" -ge "$WANT" ] && break
  sleep 0.1
  i=$((i + 1))
done
[ "$(echo $DEVS | wc -w)" -ge "$WANT" ] || { list_pci; fail "found disks [$DEVS], want $WANT"; }
echo "RESULT bench_disks=$(echo $DEVS | wc -w) bench_devs=$(echo $DEVS | tr ' ' ',')"

S=${VFUD_BENCH_S:-5}
job_args() {
  case $1 in
    randread_qd1) echo "--rw=randread --bs=4k --iodepth=1" ;;
    randread_qd16) echo "--rw=randread --bs=4k --iodepth=16" ;;
    randread_qd32) echo "--rw=randread --bs=4k --iodepth=32" ;;
    randwrite_qd16) echo "--rw=randwrite --bs=4k --iodepth=16" ;;
    seqread_1m) echo "--rw=read --bs=1M --iodepth=4" ;;
    seqwrite_1m) echo "--rw=write --bs=1M --iodepth=4" ;;
    *) fail "unknown job $1" ;;
  esac
}
for job in ${VFUD_BENCH_JOBS:-randread_qd1 randread_qd16 randread_qd32 randwrite_qd16 seqread_1m seqwrite_1m}; do
  args=$(job_args "$job")
  files=''
  for dev in $DEVS; do
    bytes=$(blockdev --getsize64 "$dev")
    span=${VFUD_BENCH_SPAN:-$((bytes < 1073741824 ? bytes : 1073741824))}
    files="$files --name=$job$(basename "$dev") --filename=$dev --size=$span"
  done
  # shellcheck disable=SC2086  # word splitting of the argument lists is wanted
  if ! fio --direct=1 --ioengine=libaio --runtime="$S" --time_based --minimal $args $files \
    >/tmp/fio.out 2>/tmp/fio.err; then
    head -5 /tmp/fio.err
    fail "fio $job failed"
  fi
  # terse v3: 7 read KiB/s, 8 read IOPS, 40 read mean latency (us); 48, 49, 81 the same for writes
  awk -F';' -v job="$job" '
    { rb += $7; ri += $8; rl += $40; wb += $48; wi += $49; wl += $81; n++ }
    END {
      if (ri + 0 > 0) { b = rb; i = ri; l = rl / n } else { b = wb; i = wi; l = wl / n }
      printf "RESULT %s_iops=%d %s_MBps=%.1f %s_lat_us=%.1f\n", job, i, job, b * 1024 / 1000000, job, l
    }' /tmp/fio.out
done
exit 0
