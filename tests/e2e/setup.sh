#!/bin/bash
# setup.sh - build, once, the private Debian trixie root the end-to-end tests run QEMU from.
#
# The root ($VFUD_E2E_DIR/root) holds:
#   qemu-system-x86, qemu-utils   from trixie-backports (QEMU 11.1: the vfio-user-pci client)
#   linux-image-amd64             the guest kernel (and its modules)
#   busybox-static, kmod, fio     the guest's userland pieces (build-guest.sh takes them from here)
#   zstd                          (de)compression for build-guest.sh, so the host needs no zstd
#   iproute2                      for network tests
# Nothing is installed on the host except debootstrap (only when it is missing). QEMU is never
# installed on the host: run-guest.sh starts the root's QEMU through the root's dynamic loader.
#
# QEMU: by default the newest qemu-system-x86/qemu-utils that trixie-backports offers, since
# Debian withdraws a backports build as soon as a newer one is uploaded (an exact pin breaks every
# fresh clone within weeks). A build older than QEMU_MIN or without the vfio-user-pci device is
# refused. VFUD_QEMU_VERSION=EXACT pins one build on request.
#
# Idempotent: a stamp file records the wishes (line 1) and what was actually installed (line 2);
# a second run with the same wishes exits at once, also when the mirror has moved on to a newer
# build since (the cached root keeps working; delete it to take the newer one). Changing
# VFUD_QEMU_VERSION or the package list re-runs only the apt steps.
# Every network or package step is bounded with `timeout`. Must run as root (debootstrap, chroot).
#
# Env:
#   VFUD_E2E_DIR        cache dir (default /var/tmp/vfud-e2e)
#   VFUD_MIRROR         Debian mirror (default http://deb.debian.org/debian)
#   VFUD_QEMU_VERSION   exact qemu-system-x86/qemu-utils version to pin (opt-in); unset, empty,
#                       "newest" or "any" take the newest build trixie-backports offers
set -euo pipefail

E2E_TAG=setup
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
R=$E2E_ROOT
MIRROR=${VFUD_MIRROR:-http://deb.debian.org/debian}
WANT_QEMU=${VFUD_QEMU_VERSION:-newest}
[ "$WANT_QEMU" = any ] && WANT_QEMU=newest
QEMU_MIN=10.1 # the first QEMU with the vfio-user-pci client
BACKPORTS_PKGS="qemu-system-x86 qemu-utils"
TRIXIE_PKGS="linux-image-amd64 busybox-static fio kmod iproute2 zstd"
STAMP=$E2E_SETUP_STAMP
STAMP_WANT="qemu=$WANT_QEMU backports=[$BACKPORTS_PKGS] trixie=[$TRIXIE_PKGS] mirror=$MIRROR"

log() { e2e_log "$@"; }
die() { e2e_die "$@"; }

stamp_ok() { [ -f "$STAMP" ] && [ "$(head -1 "$STAMP")" = "$STAMP_WANT" ]; }
if stamp_ok; then
  log "up to date: $R ($(sed -n 2p "$STAMP"))"
  log "installed qemu-system-x86 $(sed -n 2p "$STAMP" | sed -E 's/^qemu=([^ ]*).*/\1/')"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it); try: sudo $0"
[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported (got $(uname -m))"

mkdir -p "$E2E_DIR"
# one setup at a time (parallel test runs share the cache dir)
exec 9>"$E2E_DIR/.setup.lock"
if ! flock -w 1800 9; then die "timed out waiting for another setup.sh holding $E2E_DIR/.setup.lock"; fi
if stamp_ok; then log "up to date (built by a concurrent run): $R"; exit 0; fi

# ---------- mounts: only /proc, always undone on exit ----------
MOUNTED=()
unmount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTED[$i]}" 2>/dev/null || umount -l "${MOUNTED[$i]}" 2>/dev/null || true
  done
  MOUNTED=()
}
trap unmount_all EXIT
trap 'exit 130' INT TERM
# refuses to go on if anything is mounted below DIR (so `rm -rf DIR` can never reach the host)
assert_nothing_mounted_under() {
  if awk -v d="$1/" 'index($2 "/", d) == 1 {found=1} END {exit !found}' /proc/self/mounts; then
    die "something is still mounted below $1 (see /proc/self/mounts); unmount it and retry"
  fi
}

# ---------- host: debootstrap ----------
if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || die "debootstrap is missing and this host has no apt-get to install it"
  log "installing debootstrap on the host (apt-get update; apt-get install debootstrap)"
  timeout 600 apt-get update -q || die "apt-get update on the host failed or timed out"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q debootstrap \
    || die "could not install debootstrap on the host"
fi
for t in flock chroot timeout mount; do command -v $t >/dev/null || die "host tool '$t' is missing"; done

# ---------- debootstrap trixie (into a temp dir, moved into place when complete) ----------
if [ ! -f "$R/.vfud-debootstrap-done" ]; then
  for d in "$R" "$R.tmp"; do
    if [ -e "$d" ]; then assert_nothing_mounted_under "$d"; rm -rf "$d"; fi
  done
  log "debootstrap --variant=minbase trixie (about 1-3 min)"
  timeout 1500 debootstrap --variant=minbase trixie "$R.tmp" "$MIRROR" > "$E2E_DIR/debootstrap.log" 2>&1 || {
    tail -20 "$E2E_DIR/debootstrap.log" >&2
    assert_nothing_mounted_under "$R.tmp"
    die "debootstrap failed or timed out (full log: $E2E_DIR/debootstrap.log)"
  }
  assert_nothing_mounted_under "$R.tmp"
  touch "$R.tmp/.vfud-debootstrap-done"
  mv "$R.tmp" "$R"
fi

[ -c "$R/dev/null" ] || die "$R/dev/null is not a device node (debootstrap could not mknod?)"
cat > "$R/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: trixie trixie-updates trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
rm -f "$R/etc/apt/sources.list"
# no service may ever start from inside the root
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true

if ! mountpoint -q "$R/proc"; then
  mount -t proc proc "$R/proc"
  MOUNTED+=("$R/proc")
fi

# inroot SECONDS CMD...: run CMD inside the root, bounded in time
inroot() {
  local t=$1
  shift
  DEBIAN_FRONTEND=noninteractive LC_ALL=C timeout "$t" chroot "$R" "$@"
}

log "apt-get update (trixie, trixie-updates, trixie-backports)"
inroot 600 apt-get update -q > "$E2E_DIR/apt.log" 2>&1 || { tail -20 "$E2E_DIR/apt.log" >&2; die "apt-get update in the root failed"; }

QSPECS=()
if [ "$WANT_QEMU" = newest ]; then
  CANDIDATE=$(inroot 60 apt-cache policy -t trixie-backports qemu-system-x86 | awk '/Candidate:/ {print $2}')
  [ -n "$CANDIDATE" ] && [ "$CANDIDATE" != "(none)" ] || die "trixie-backports offers no qemu-system-x86 (mirror $MIRROR)"
  # the upstream version without epoch and Debian revision: 1:11.1.3+ds-2~bpo13+1 -> 11.1.3
  UPSTREAM=${CANDIDATE#*:}
  UPSTREAM=${UPSTREAM%%[+~-]*}
  if ! printf '%s\n%s\n' "$QEMU_MIN" "$UPSTREAM" | sort -V -C; then
    die "trixie-backports offers qemu-system-x86 $CANDIDATE, older than $QEMU_MIN (the first with vfio-user-pci)"
  fi
  log "newest qemu-system-x86 on trixie-backports: $CANDIDATE"
  read -ra QSPECS <<< "$BACKPORTS_PKGS"
else
  for p in $BACKPORTS_PKGS; do
    if ! inroot 60 apt-cache madison "$p" | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep -qxF "$WANT_QEMU"; then
      log "available versions of $p:"
      inroot 60 apt-cache madison "$p" >&2 || true
      die "$p version $WANT_QEMU is not on the mirror; set VFUD_QEMU_VERSION to one of the above, or unset it for the newest"
    fi
    QSPECS+=("$p=$WANT_QEMU")
  done
fi
log "installing ${QSPECS[*]} from trixie-backports"
inroot 1500 apt-get install -y -q --no-install-recommends -t trixie-backports "${QSPECS[@]}" >> "$E2E_DIR/apt.log" 2>&1 \
  || { tail -30 "$E2E_DIR/apt.log" >&2; die "installing QEMU failed (log: $E2E_DIR/apt.log)"; }
log "installing $TRIXIE_PKGS from trixie"
# shellcheck disable=SC2086  # a list of package names
inroot 1500 apt-get install -y -q --no-install-recommends $TRIXIE_PKGS >> "$E2E_DIR/apt.log" 2>&1 \
  || { tail -30 "$E2E_DIR/apt.log" >&2; die "installing guest packages failed (log: $E2E_DIR/apt.log)"; }
inroot 300 apt-get clean
unmount_all

# ---------- verify ----------
QV=$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Version}' qemu-system-x86)
[ "$WANT_QEMU" = newest ] || [ "$QV" = "$WANT_QEMU" ] || die "qemu-system-x86 is $QV, wanted $WANT_QEMU"
QUV=${QV#*:}
QUV=${QUV%%[+~-]*}
printf '%s\n%s\n' "$QEMU_MIN" "$QUV" | sort -V -C || die "qemu-system-x86 $QV in $R is older than $QEMU_MIN"
KV=$(ls "$R/lib/modules" | sort -V | tail -1)
if [ -z "$KV" ] || [ ! -f "$R/boot/vmlinuz-$KV" ]; then die "no guest kernel in $R/boot"; fi
[ -x "$R/usr/bin/busybox" ] || die "no busybox in the root"
# run the root's QEMU exactly the way run-guest.sh does (through the root's loader, no chroot)
qemu_cmd
HELP=$(timeout 60 "${QEMU_CMD[@]}" -nodefaults -device help 2>&1) \
  || die "the root's qemu-system-x86_64 does not run: $HELP"
grep -q '"vfio-user-pci"' <<< "$HELP" || die "qemu-system-x86_64 $QV in $R has no vfio-user-pci device"

printf '%s\n%s\n' "$STAMP_WANT" "qemu=$QV kernel=$KV date=$(date -u +%FT%TZ)" > "$STAMP"
log "done: $R (guest kernel $KV, $(du -sh "$R" 2>/dev/null | cut -f1))"
log "installed qemu-system-x86 $QV"
