# svc-records.sh - writes numbered 4 KiB records to a virtio-blk disk, one after the other, and
# reports each one on the console once it is durable (busybox ash). For service_test.ts: the host
# stops the server in the middle and then checks that every reported record is in the image.
#
# Record i (0, 1, 2, ...) is the 4 KiB block at byte offset i*4096: 64 lines of 64 bytes, line l
# being printf '%-63s\n' "svc-record $i token $VFUD_REC_TOKEN line $l". Each record is one
# dd write(2) with O_DIRECT followed by fsync(2) (conv=fsync: a virtio-blk FLUSH; busybox dd has
# no oflag=sync, and O_SYNC on a block device with a write cache means the same write + flush),
# and only after dd returned success does the script print "RESULT done=N" (N = i+1 = number of
# records completed so far). Records are written strictly in order, one at a time.
#
# Env:
#   VFUD_REC_TOKEN  required: a word stamped into every record (so stale data never matches)
#   VFUD_REC_MAX    how many records at most (default 100000; also capped by the disk size)
#   VFUD_BLK_ID     vendor:device (default 0x1af4:0x1042)
# Prints "RESULT rec_start=1 ..." before the first write; on a failed write
# "RESULT rec_write_error_at=i" and exits 1; after the last record "RESULT rec_all_done=N".
. /guest/common.sh

ID=${VFUD_BLK_ID:-0x1af4:0x1042}
TOKEN=${VFUD_REC_TOKEN:?VFUD_REC_TOKEN is not set}
BDF=$(find_pci "$ID") || { list_pci; fail "no PCI function $ID"; }
DEV=$(wait_blockdev "$BDF") || fail "no block device below $BDF"
BYTES=$(blockdev --getsize64 "/dev/$DEV")
MAX=${VFUD_REC_MAX:-100000}
[ "$MAX" -le $((BYTES / 4096)) ] || MAX=$((BYTES / 4096))
echo "RESULT rec_dev=$DEV rec_bytes=$BYTES rec_max=$MAX rec_driver=$(pci_driver "$BDF") rec_start=1"

i=0
while [ "$i" -lt "$MAX" ]; do
  l=0
  : > /tmp/rec
  while [ "$l" -lt 64 ]; do
    printf '%-63s\n' "svc-record $i token $TOKEN line $l" >> /tmp/rec
    l=$((l + 1))
  done
  if dd if=/tmp/rec of="/dev/$DEV" bs=4096 seek="$i" count=1 oflag=direct conv=notrunc,fsync 2>/tmp/dd.err; then
    i=$((i + 1))
    echo "RESULT done=$i"
  else
    head -3 /tmp/dd.err
    echo "RESULT rec_write_error_at=$i"
    exit 1
  fi
done
echo "RESULT rec_all_done=$i"
exit 0
