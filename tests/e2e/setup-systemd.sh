#!/bin/bash
# setup-systemd.sh - builds, once, the Debian trixie root that systemd_test.ts boots with
# systemd-nspawn so that vfud's units run under a real systemd as PID 1 (the machines this project
# runs on have no systemd of their own). The root is minbase plus systemd, systemd-sysv and dbus;
# it is never changed afterwards: the test boots it with --volatile=overlay (writes go to a tmpfs)
# and installs the vfud package inside each time.
#
# Installs on the host, when missing: debootstrap and systemd-container (systemd-nspawn).
# Idempotent (a stamp file records what was built); every network step is bounded with timeout.
# Must run as root.
#
# Env:
#   VFUD_SYSTEMD_DIR   cache dir (default /var/tmp/vfud-systemd); the root is $VFUD_SYSTEMD_DIR/root
#   VFUD_MIRROR        Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

E2E_TAG=setup-systemd
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
DIR=${VFUD_SYSTEMD_DIR:-/var/tmp/vfud-systemd}
R=$DIR/root
MIRROR=${VFUD_MIRROR:-http://deb.debian.org/debian}
PKGS=systemd,systemd-sysv,dbus
STAMP=$R/.vfud-systemd-setup
WANT="trixie minbase include=$PKGS mirror=$MIRROR"

log() { e2e_log "$@"; }
die() { e2e_die "$@"; }
stamp_ok() { [ -f "$STAMP" ] && [ "$(head -1 "$STAMP")" = "$WANT" ]; }

need_host_tool() { # TOOL PACKAGE
  command -v "$1" >/dev/null && return 0
  command -v apt-get >/dev/null || die "$1 is missing and this host has no apt-get to install $2"
  log "installing $2 on the host (for $1)"
  timeout 600 apt-get update -q >/dev/null || die "apt-get update on the host failed or timed out"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends "$2" \
    >/dev/null || die "could not install $2 on the host"
}

if stamp_ok && command -v systemd-nspawn >/dev/null; then
  log "up to date: $R ($(sed -n 2p "$STAMP"))"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and systemd-nspawn need it)"
need_host_tool systemd-nspawn systemd-container
need_host_tool debootstrap debootstrap
stamp_ok && { log "up to date: $R"; exit 0; }

mkdir -p "$DIR"
exec 9>"$DIR/.setup.lock"
flock -w 1800 9 || die "timed out waiting for another setup-systemd.sh ($DIR/.setup.lock)"
stamp_ok && { log "up to date (built by a concurrent run): $R"; exit 0; }

if [ ! -f "$R/.vfud-debootstrap-done" ]; then
  rm -rf "$R" "$R.tmp"
  log "debootstrap --variant=minbase --include=$PKGS trixie (about 1-3 min)"
  timeout 1500 debootstrap --variant=minbase --include="$PKGS" trixie "$R.tmp" "$MIRROR" \
    >"$DIR/debootstrap.log" 2>&1 || {
    tail -20 "$DIR/debootstrap.log" >&2
    die "debootstrap failed or timed out (full log: $DIR/debootstrap.log)"
  }
  touch "$R.tmp/.vfud-debootstrap-done"
  mv "$R.tmp" "$R"
fi
V=$(chroot "$R" systemctl --version | head -1) || die "the root's systemctl does not run"
[ -x "$R/usr/lib/systemd/systemd" ] || die "no systemd in $R"
printf '%s\n%s\n' "$WANT" "$V, built $(date -u +%FT%TZ)" >"$STAMP"
log "done: $R ($V, $(du -sh "$R" 2>/dev/null | cut -f1))"
