# blk-perf.sh - throughput of a virtio-blk disk, seen from the guest (busybox ash; fio if present).
# DESTRUCTIVE when VFUD_PERF_WRITE=1 (default): the first VFUD_PERF_MB MiB of the disk are overwritten.
#
# Env:
#   VFUD_BLK_ID      vendor:device (default 0x1af4:0x1042)
#   VFUD_PERF_MB     MiB per dd run (default 64; capped at the disk size)
#   VFUD_PERF_BS     dd block size (default 1M)
#   VFUD_PERF_WRITE  1 (default): also measure sequential writes; 0: reads only
#   VFUD_FIO_S       seconds per fio run (default 5)
#   VFUD_FIO_SIZE    span of the random reads (default: min(256M, disk))
# Prints: RESULT dd_read_MBps=, dd_write_MBps=, fio_randread_qd1_iops=, fio_randread_qd16_iops=
# (with lat/bandwidth companions), or fio=absent when the guest has no fio (run-guest.sh --fio).
. /guest/common.sh
ID=${VFUD_BLK_ID:-0x1af4:0x1042}
BDF=$(find_pci "$ID") || { list_pci; fail "no PCI function $ID"; }
DEV=$(wait_blockdev "$BDF") || fail "no block device below $BDF"
BYTES=$(blockdev --getsize64 "/dev/$DEV")
MB=${VFUD_PERF_MB:-64}
[ $((MB * 1048576)) -le "$BYTES" ] || MB=$((BYTES / 1048576))
BS=${VFUD_PERF_BS:-1M}
case $BS in *[mM]) BSB=$((${BS%?} * 1048576)) ;; *[kK]) BSB=$((${BS%?} * 1024)) ;; *) BSB=$BS ;; esac
COUNT=$((MB * 1048576 / BSB))
echo "RESULT perf_dev=$DEV perf_driver=$(pci_driver "$BDF") perf_disk_bytes=$BYTES perf_mb=$MB perf_bs=$BSB"

# ---- sequential read / write with dd, O_DIRECT ----
t0=$(now)
dd if="/dev/$DEV" of=/dev/null bs="$BSB" count="$COUNT" iflag=direct 2>/tmp/dd.err || { cat /tmp/dd.err; fail "dd read failed"; }
s=$(elapsed "$t0")
echo "RESULT dd_read_s=$s dd_read_MBps=$(mbps $((COUNT * BSB)) "$s")"
if [ "${VFUD_PERF_WRITE:-1}" = 1 ]; then
  t0=$(now)
  dd if=/dev/zero of="/dev/$DEV" bs="$BSB" count="$COUNT" oflag=direct conv=notrunc,fsync 2>/tmp/dd.err || { cat /tmp/dd.err; fail "dd write failed"; }
  s=$(elapsed "$t0")
  echo "RESULT dd_write_s=$s dd_write_MBps=$(mbps $((COUNT * BSB)) "$s")"
fi

# ---- fio: 4 KiB random reads, QD1 and QD16 (libaio, O_DIRECT) ----
if [ -x /usr/bin/fio ]; then
  SIZE=${VFUD_FIO_SIZE:-$((BYTES < 268435456 ? BYTES : 268435456))}
  for qd in 1 16; do
    if fio --name=rr --filename="/dev/$DEV" --direct=1 --rw=randread --bs=4k --ioengine=libaio \
      --iodepth=$qd --size="$SIZE" --runtime="${VFUD_FIO_S:-5}" --time_based --minimal >/tmp/fio.out 2>/tmp/fio.err; then
      # terse v3: 7 read bw KiB/s, 8 read iops, 40 read total latency mean (us)
      awk -F';' -v qd=$qd '{printf "RESULT fio_randread_qd%d_iops=%s fio_randread_qd%d_bw_KiBps=%s fio_randread_qd%d_lat_mean_us=%s\n", qd, $8, qd, $7, qd, $40}' /tmp/fio.out
    else
      head -5 /tmp/fio.err
      fail "fio qd$qd failed"
    fi
  done
else
  echo "RESULT fio=absent"
fi
exit 0
