#!/usr/bin/env bash
# deno task deb: builds a Debian package, dist/vfud_VERSION_ARCH.deb, with dpkg-deb. It holds
#   /usr/bin/vfud                       a small sh wrapper (contrib/debian/vfud.sh)
#   /usr/lib/vfud/vfud.js, deno         the bundle (tools/compile.sh) and the Deno runtime it runs
#                                       on (the deno of this machine, from the npm package)
#   /usr/share/vfio-user/, /usr/lib/systemd/system/, /usr/lib/sysusers.d/, man page, completion,
#   /usr/share/doc/vfud/                what tools/install.sh installs for PREFIX=/usr
# It depends on nothing but libc6 and libgcc-s1 (what the Deno binary links), which every
# Debian and Ubuntu system has; postinst creates the system user vfud.
#
# Env: VFUD_DEB_VERSION (default: deno.json's version), VFUD_DENO_BIN (the runtime to ship,
# default: the deno on PATH), VFUD_DEB_COMPRESSION (xz, gzip, zstd or none; default xz) and
# VFUD_DEB_LEVEL (default 6), VFUD_DEB_OUT (default dist/vfud_VERSION_ARCH.deb).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "deb: $*" >&2
  exit 1
}
for t in dpkg-deb md5sum gzip; do command -v "$t" >/dev/null || die "$t is missing (apt-get install dpkg)"; done
version=${VFUD_DEB_VERSION:-$(sed -nE 's/^ *"version": *"([^"]+)".*/\1/p' deno.json | head -1)}
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "bad package version '$version'"
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) die "unsupported machine $(uname -m)" ;; esac
deno_bin=$(readlink -f "${VFUD_DENO_BIN:-$(command -v deno)}")
[ -x "$deno_bin" ] || die "no deno runtime at ${VFUD_DENO_BIN:-the deno on PATH}"
head -c 4 "$deno_bin" | grep -q ELF || die "$deno_bin is not an ELF binary (a wrapper script?)"
deno_version=$("$deno_bin" --version | awk 'NR==1{print $2}')
out=${VFUD_DEB_OUT:-dist/vfud_${version}_${arch}.deb}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
VFUD_BUILD=bundle VFUD_OUT="$tmp/vfud.js" bash tools/compile.sh >/dev/null
PREFIX=/usr DESTDIR="$root" VFUD_BINARY=contrib/debian/vfud.sh bash tools/install.sh >/dev/null
install -d "$root/usr/lib/vfud"
install -m 0644 "$tmp/vfud.js" "$root/usr/lib/vfud/vfud.js"
install -m 0755 "$deno_bin" "$root/usr/lib/vfud/deno"
gzip -9n "$root/usr/share/man/man1/vfud.1"

doc=$root/usr/share/doc/vfud
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: vfud"
  echo
  echo "Files: usr/lib/vfud/deno"
  echo "Comment: Deno $deno_version, the runtime vfud runs on (npm package deno)."
  echo "License: MIT"
  echo
  echo "Files: usr/lib/vfud/vfud.js"
  echo "Comment: vfud, bundled with @logtape/logtape (MIT)."
  echo
  echo "License: MIT"
  deno_license=$(dirname "$deno_bin")/LICENSE
  [ -f "$deno_license" ] || deno_license=$(dirname "$deno_bin")/../../LICENSE
  if [ -f "$deno_license" ]; then sed 's/^$/./; s/^/ /' "$deno_license"; fi
} >"$doc/copyright"
chmod 0644 "$doc/copyright"

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed "s/@VERSION@/$version/; s/@ARCH@/$arch/; s/@SIZE@/$size/" contrib/debian/control >"$root/DEBIAN/control"
for s in postinst prerm postrm; do install -m 0755 "contrib/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Z"${VFUD_DEB_COMPRESSION:-xz}" -z"${VFUD_DEB_LEVEL:-6}" \
  --build "$root" "$out" >/dev/null
echo "deb: built $out (vfud $version, Deno $deno_version runtime, $(du -h "$out" | cut -f1))"
