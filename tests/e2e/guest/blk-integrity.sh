# blk-integrity.sh - data integrity of a virtio-blk disk, seen from the guest (busybox ash).
#
# Finds the PCI function VFUD_BLK_ID, checks its driver and the capacity of its block device, then
# depending on VFUD_BLK_MODE:
#   write     (default) writes every VFUD_WRITES entry with O_DIRECT (and fsync), flushes (sync,
#             blockdev --flushbufs), drops the page cache and reads every entry back with O_DIRECT
#             (once with the entry's block size, once in 4 KiB requests), comparing md5s
#   verify    no writes: reads the VFUD_WRITES ranges back (e.g. a second boot checks that the
#             first boot's data persisted)
#   readonly  every write must fail with an error; reads must still work (VFUD_CHECKS, whole-disk md5)
# In every mode VFUD_CHECKS regions and VFUD_EXPECT_DISK_MD5 are verified last.
#
# Env:
#   VFUD_EXPECT_BYTES     required: capacity of the disk in bytes
#   VFUD_BLK_ID           vendor:device (default 0x1af4:0x1042, virtio-blk 1.x)
#   VFUD_BLK_DRIVER       expected PCI driver (default virtio-pci)
#   VFUD_BLK_MODE         write | verify | readonly
#   VFUD_WRITES           space-separated FILE:OFFSET:LENGTH:BS:MD5 - FILE is /data/FILE (passed
#                         with run-guest.sh --file; unused in verify mode), OFFSET and LENGTH in
#                         bytes (LENGTH = size of FILE), BS the dd block size (bytes, or with a
#                         K/M suffix: one write(2) per BS; LENGTH must be a multiple of it), MD5
#                         the host's md5 of FILE
#   VFUD_CHECKS           space-separated OFFSET:LENGTH:MD5 - regions whose content must have md5 MD5
#   VFUD_EXPECT_DISK_MD5  md5 of the whole disk at the end (read with O_DIRECT, 1 MiB requests)
# Prints RESULT lines with unique keys (w<N>_* per write entry, c<N>_* per check) and finally
# "RESULT blk_integrity=ok" (exit 0) or "RESULT blk_integrity=fail" (exit 1).
. /guest/common.sh

ID=${VFUD_BLK_ID:-0x1af4:0x1042}
MODE=${VFUD_BLK_MODE:-write}
case $MODE in write | verify | readonly) ;; *) fail "VFUD_BLK_MODE=$MODE: want write, verify or readonly" ;; esac
[ -n "${VFUD_EXPECT_BYTES:-}" ] || fail "VFUD_EXPECT_BYTES is not set"
echo "RESULT blk_mode=$MODE"

BDF=$(find_pci "$ID") || { list_pci; echo "RESULT blk_found=0"; fail "no PCI function $ID"; }
DRV=$(pci_driver "$BDF")
echo "RESULT blk_found=1 blk_bdf=$BDF blk_driver=$DRV"
[ "$DRV" = "${VFUD_BLK_DRIVER:-virtio-pci}" ] || fail "driver of $BDF is $DRV, want ${VFUD_BLK_DRIVER:-virtio-pci}"
DEV=$(wait_blockdev "$BDF") || fail "no block device below $BDF"
BYTES=$(blockdev --getsize64 "/dev/$DEV")
echo "RESULT blk_dev=$DEV blk_bytes=$BYTES blk_ro=$(blockdev --getro "/dev/$DEV") blk_logical_block=$(blockdev --getss "/dev/$DEV") blk_max_sectors_kb=$(cat "/sys/block/$DEV/queue/max_sectors_kb") blk_max_hw_sectors_kb=$(cat "/sys/block/$DEV/queue/max_hw_sectors_kb") blk_write_cache=$(tr ' ' _ < "/sys/block/$DEV/queue/write_cache")"
if [ "$BYTES" = "$VFUD_EXPECT_BYTES" ]; then
  echo "RESULT blk_size_ok=1"
else
  echo "RESULT blk_size_ok=0 blk_expect_bytes=$VFUD_EXPECT_BYTES"
  fail "capacity $BYTES != $VFUD_EXPECT_BYTES"
fi

# to_bytes 4M -> 4194304
to_bytes() {
  case $1 in
    *[kK]) echo $((${1%?} * 1024)) ;;
    *[mM]) echo $((${1%?} * 1048576)) ;;
    *) echo $(($1)) ;;
  esac
}
# parse_write ENTRY: sets f off len bs md5
parse_write() {
  local IFS=:
  set -- $1
  [ $# = 5 ] || fail "VFUD_WRITES entry: want FILE:OFFSET:LENGTH:BS:MD5"
  f=$1 off=$2 len=$3 bs=$(to_bytes "$4") md5=$5
  [ $((len % bs)) = 0 ] || fail "VFUD_WRITES entry for $f: length $len is not a multiple of bs $bs"
}
FAILS=0
bad() { FAILS=$((FAILS + 1)); echo "RESULT $1"; }
# read_md5 OFFSET LENGTH BS -> md5 of the region, read with O_DIRECT in BS-sized requests; on
# failure prints dd's error instead and returns 1
read_md5() {
  dd if="/dev/$DEV" of=/tmp/readback bs="$3" skip="$1" count="$2" iflag=direct,skip_bytes,count_bytes 2>/tmp/dd.err || {
    head -3 /tmp/dd.err | tr ' ' '_'
    return 1
  }
  [ "$(stat -c %s /tmp/readback)" = "$2" ] || { echo "short read: $(stat -c %s /tmp/readback) of $2 bytes"; return 1; }
  md5_of /tmp/readback
  rm -f /tmp/readback
}

# ---------- writes ----------
n=0
for e in ${VFUD_WRITES:-}; do
  parse_write "$e"
  echo "RESULT w${n}_file=$f w${n}_offset=$off w${n}_bytes=$len w${n}_bs=$bs"
  if [ "$MODE" != verify ]; then
    [ -f "/data/$f" ] || fail "no /data/$f (pass it with run-guest.sh --file)"
    [ "$(stat -c %s "/data/$f")" = "$len" ] || fail "/data/$f is not $len bytes long"
    [ "$(md5_of "/data/$f")" = "$md5" ] || fail "/data/$f does not have the host's md5 $md5"
  fi
  if [ "$MODE" = write ]; then
    t0=$(now)
    # conv=fsync: fsync(2) on the block device sends a FLUSH when the disk has a write cache
    if dd if="/data/$f" of="/dev/$DEV" bs="$bs" seek="$off" oflag=direct,seek_bytes conv=notrunc,fsync 2>/tmp/dd.err; then
      s=$(elapsed "$t0")
      echo "RESULT w${n}_write_ok=1 w${n}_write_s=$s w${n}_write_MBps=$(mbps "$len" "$s")"
    else
      head -3 /tmp/dd.err
      bad "w${n}_write_ok=0"
    fi
  elif [ "$MODE" = readonly ]; then
    if dd if="/data/$f" of="/dev/$DEV" bs="$bs" seek="$off" oflag=direct,seek_bytes conv=notrunc,fsync 2>/tmp/dd.err; then
      bad "w${n}_write_rejected=0"
    else
      echo "RESULT w${n}_write_rejected=1 w${n}_write_error=$(head -1 /tmp/dd.err | tr ' ' '_')"
    fi
  fi
  n=$((n + 1))
done
NW=$n

# ---------- flush, drop caches ----------
if [ "$MODE" = write ]; then
  t0=$(now)
  sync
  if blockdev --flushbufs "/dev/$DEV"; then echo "RESULT flush_ok=1 flush_s=$(elapsed "$t0")"; else bad "flush_ok=0"; fi
fi
sync
echo 3 > /proc/sys/vm/drop_caches

# ---------- read back the written ranges ----------
if [ "$MODE" != readonly ]; then
  n=0
  for e in ${VFUD_WRITES:-}; do
    parse_write "$e"
    if got=$(read_md5 "$off" "$len" "$bs"); then
      if [ "$got" = "$md5" ]; then
        echo "RESULT w${n}_read_ok=1"
      else
        bad "w${n}_read_ok=0 w${n}_read_md5=$got"
      fi
    else
      bad "w${n}_read_ok=0 w${n}_read_error=$got"
    fi
    if got=$(read_md5 "$off" "$len" 4096) && [ "$got" = "$md5" ]; then
      echo "RESULT w${n}_read4k_ok=1"
    else
      bad "w${n}_read4k_ok=0 w${n}_read4k_md5=$got"
    fi
    n=$((n + 1))
  done
fi

# ---------- regions that must hold given content ----------
n=0
for e in ${VFUD_CHECKS:-}; do
  IFS0=$IFS
  IFS=:
  set -- $e
  IFS=$IFS0
  [ $# = 3 ] || fail "VFUD_CHECKS entry $e: want OFFSET:LENGTH:MD5"
  bs=512
  [ $(($2 % 4096)) = 0 ] && bs=4096
  [ $(($2 % 65536)) = 0 ] && bs=65536
  if got=$(read_md5 "$1" "$2" "$bs") && [ "$got" = "$3" ]; then
    echo "RESULT c${n}_ok=1 c${n}_offset=$1 c${n}_bytes=$2"
  else
    bad "c${n}_ok=0 c${n}_offset=$1 c${n}_bytes=$2 c${n}_md5=$got c${n}_want=$3"
  fi
  n=$((n + 1))
done
NC=$n

# ---------- the whole disk ----------
if [ -n "${VFUD_EXPECT_DISK_MD5:-}" ]; then
  t0=$(now)
  got=$(dd if="/dev/$DEV" bs=1M iflag=direct 2>/tmp/dd.err | md5sum | cut -d' ' -f1)
  s=$(elapsed "$t0")
  if [ "$got" = "$VFUD_EXPECT_DISK_MD5" ]; then
    echo "RESULT disk_md5_ok=1 disk_read_s=$s disk_read_MBps=$(mbps "$BYTES" "$s")"
  else
    cat /tmp/dd.err
    bad "disk_md5_ok=0 disk_md5=$got"
  fi
fi

echo "RESULT blk_writes=$NW blk_checks=$NC blk_failures=$FAILS"
if [ "$FAILS" = 0 ]; then
  echo "RESULT blk_integrity=ok"
  exit 0
fi
echo "RESULT blk_integrity=fail"
exit 1
