# common.sh - helpers for the guest scripts (busybox ash). Source with: . /guest/common.sh
# Scripts report with "RESULT key=value ..." lines on stdout (the serial console); keys should be
# unique within a run, so the host can read all RESULT lines as one map.

# fail MSG...: report and exit 1
fail() { echo "RESULT error=$(echo "$*" | tr ' ' '_')"; exit 1; }
now() { cut -d' ' -f1 /proc/uptime; }
# elapsed T0 -> seconds since T0 (from now), at least 0.01
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN {d = b - a; if (d < 0.01) d = 0.01; printf "%.2f", d}'; }
# mbps BYTES SECONDS -> MB/s (10^6 bytes)
mbps() { awk -v n="$1" -v s="$2" 'BEGIN {printf "%.1f", n / 1000000 / s}'; }
md5_of() { md5sum "$1" | cut -d' ' -f1; }

# list_pci: one RESULT line per PCI function
list_pci() {
  local d n=0 drv
  for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    drv=none
    [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    echo "RESULT pci_$n=$(basename "$d") pci_${n}_id=$(cat "$d/vendor"):$(cat "$d/device") pci_${n}_class=$(cat "$d/class") pci_${n}_driver=$drv"
    n=$((n + 1))
  done
  echo "RESULT pci_count=$n"
}
# find_pci VENDOR:DEVICE -> prints the first matching BDF (e.g. find_pci 0x1af4:0x1042)
find_pci() {
  local d
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor"):$(cat "$d/device")" = "$1" ] && { basename "$d"; return 0; }
  done
  return 1
}
# pci_driver BDF -> name of the bound driver (or "none")
pci_driver() {
  if [ -e "/sys/bus/pci/devices/$1/driver" ]; then basename "$(readlink "/sys/bus/pci/devices/$1/driver")"; else echo none; fi
}
# blockdev_of BDF -> block device (vda, ...) that lives below that PCI function
blockdev_of() {
  local b
  for b in /sys/block/*; do
    case "$(readlink -f "$b")" in *"/$1/"*) basename "$b"; return 0 ;; esac
  done
  return 1
}
# wait_blockdev BDF [TENTHS] -> block device name, waiting up to TENTHS/10 s (default 10 s)
wait_blockdev() {
  local i=0 dev
  while [ $i -lt "${2:-100}" ]; do
    dev=$(blockdev_of "$1") && { echo "$dev"; return 0; }
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}
# netdev_of BDF -> network interface of that PCI function
netdev_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -1; }
