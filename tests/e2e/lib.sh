# shellcheck shell=bash disable=SC2034
# lib.sh - sourced by setup.sh, build-guest.sh and run-guest.sh (bash). Paths and helpers.
#
# Binaries of the trixie root are started through the root's own dynamic loader, with no chroot
# and no bind mounts:  $R/lib64/ld-linux-x86-64.so.2 --library-path <root libdirs> $R/usr/bin/X
# For QEMU, /proc/self/exe is then the loader, so QEMU cannot find its firmware and modules next
# to its binary, and Debian's compiled-in paths point at the host: every -L is passed explicitly
# and QEMU_MODULE_DIR is exported.

E2E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_DIR=${VFUD_E2E_DIR:-/var/tmp/vfud-e2e}
E2E_ROOT=$E2E_DIR/root
E2E_GUEST=$E2E_DIR/guest
E2E_SETUP_STAMP=$E2E_ROOT/.vfud-e2e-setup

e2e_die() { echo "[${E2E_TAG:-e2e}] ERROR: $*" >&2; exit 1; }
e2e_log() { echo "[${E2E_TAG:-e2e}] $*" >&2; }

e2e_require_root_fs() {
  [ -f "$E2E_SETUP_STAMP" ] || e2e_die "no trixie root at $E2E_ROOT: run $E2E_HERE/setup.sh first"
}

# rootrun BIN ARGS...: run a dynamically linked program of the root (BIN is a path inside it)
rootrun() {
  local bin=$1
  shift
  "$E2E_ROOT/lib64/ld-linux-x86-64.so.2" \
    --library-path "$E2E_ROOT/lib/x86_64-linux-gnu:$E2E_ROOT/usr/lib/x86_64-linux-gnu" \
    "$E2E_ROOT$bin" "$@"
}

# busybox of the root (static)
bb() { "$E2E_ROOT/usr/bin/busybox" "$@"; }

# qemu_cmd: sets the array QEMU_CMD to the root's qemu-system-x86_64 (with its firmware dirs) and
# exports QEMU_MODULE_DIR; run as "${QEMU_CMD[@]}" ARGS...
qemu_cmd() {
  export QEMU_MODULE_DIR=$E2E_ROOT/usr/lib/x86_64-linux-gnu/qemu
  QEMU_CMD=("$E2E_ROOT/lib64/ld-linux-x86-64.so.2"
    --library-path "$E2E_ROOT/lib/x86_64-linux-gnu:$E2E_ROOT/usr/lib/x86_64-linux-gnu"
    "$E2E_ROOT/usr/bin/qemu-system-x86_64"
    -L "$E2E_ROOT/usr/share/qemu" -L "$E2E_ROOT/usr/share/seabios" -L "$E2E_ROOT/usr/lib/ipxe/qemu")
}

# e2e_accel: prints kvm or tcg. VFUD_ACCEL=kvm|tcg forces one; auto (default) takes KVM only
# when /dev/kvm is usable and backed by real hardware virtualisation (kvm_intel/kvm_amd). The
# kvm_pvm module (a software layer found on some cloud machines) cannot run a stock kernel.
e2e_accel() {
  case ${VFUD_ACCEL:-auto} in
    kvm | tcg) echo "$VFUD_ACCEL" ;;
    auto)
      if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] &&
        { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
        echo kvm
      else
        echo tcg
      fi
      ;;
    *) e2e_die "VFUD_ACCEL must be auto, kvm or tcg (got $VFUD_ACCEL)" ;;
  esac
}

# json_str S: S as a JSON string literal (quotes and backslashes escaped; control characters refused)
json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  [[ $s == *[[:cntrl:]]* ]] && e2e_die "control character in '$1'"
  printf '"%s"' "$s"
}

# hash_of FILE...: one md5 over the given files' contents (inputs of a build step)
hash_of() { cat "$@" | md5sum | cut -c1-32; }
