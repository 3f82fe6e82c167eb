#!/usr/bin/env bash
# deno task install: installs vfud under DESTDIR/PREFIX (default PREFIX=/usr/local):
#   PREFIX/bin/vfud                                   the executable (built by tools/compile.sh
#                                                     unless VFUD_BINARY names one)
#   DESCRIPTORDIR/50-vfud-*.json                      backend descriptors ("binary" = PREFIX/bin/vfud)
#   PREFIX/lib/systemd/system/vfud@.{service,socket}  units (ExecStart = PREFIX/bin/vfud)
#   PREFIX/lib/sysusers.d/vfud.conf                   the system user vfud of the units
#   PREFIX/share/man/man1/vfud.1                      the manual (generated, like --help)
#   PREFIX/share/bash-completion/completions/vfud     bash completion (generated)
#   PREFIX/share/doc/vfud/{README.md,vfud.conf.example,vfio-user.schema.json}
# DESCRIPTORDIR is where management software looks for vfio-user backend descriptors:
# /usr/share/vfio-user for PREFIX=/usr (the vendor's place), /etc/vfio-user otherwise (the
# administrator's place: nobody searches /usr/local/share/vfio-user). VFUD_DESCRIPTOR_DIR sets it.
# Configuration (/etc/vfud/INSTANCE.conf) is the administrator's: nothing else goes to /etc.
#
#   sudo deno task install                    # /usr/local (descriptors in /etc/vfio-user)
#   PREFIX=/usr DESTDIR=pkg deno task install  # staging for a package
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
case "$PREFIX" in /*) ;; *)
  echo "install: PREFIX must be absolute (got $PREFIX)" >&2
  exit 2
  ;;
esac
PREFIX=${PREFIX%/}
if [ "$PREFIX" = /usr ]; then default_descriptors=/usr/share/vfio-user; else default_descriptors=/etc/vfio-user; fi
DESCRIPTORDIR=${VFUD_DESCRIPTOR_DIR:-$default_descriptors}
case "$DESCRIPTORDIR" in /*) ;; *)
  echo "install: VFUD_DESCRIPTOR_DIR must be absolute (got $DESCRIPTORDIR)" >&2
  exit 2
  ;;
esac
bin="$PREFIX/bin/vfud"
root="$DESTDIR$PREFIX"

binary=${VFUD_BINARY:-dist/vfud}
if [ -z "${VFUD_BINARY:-}" ]; then bash tools/compile.sh; fi
[ -x "$binary" ] || {
  echo "install: $binary is not an executable" >&2
  exit 1
}
generate() { deno run --allow-ffi --allow-read --allow-env --no-lock tools/generate.ts "$1"; }

install -d "$root/bin" "$DESTDIR$DESCRIPTORDIR" "$root/lib/systemd/system" "$root/lib/sysusers.d" \
  "$root/share/man/man1" "$root/share/bash-completion/completions" "$root/share/doc/vfud"
install -m 0755 "$binary" "$root/bin/vfud"
for f in contrib/vfio-user/[0-9]*.json; do
  sed "s|\"/usr/bin/vfud\"|\"$bin\"|" "$f" >"$DESTDIR$DESCRIPTORDIR/$(basename "$f")"
  chmod 0644 "$DESTDIR$DESCRIPTORDIR/$(basename "$f")"
done
install -m 0644 contrib/vfio-user/vfio-user.schema.json "$root/share/doc/vfud/"
for f in contrib/systemd/vfud@.service contrib/systemd/vfud@.socket; do
  sed "s|/usr/bin/vfud|$bin|g; s|file:///usr/share/doc/vfud/|file://$PREFIX/share/doc/vfud/|g" \
    "$f" >"$root/lib/systemd/system/$(basename "$f")"
  chmod 0644 "$root/lib/systemd/system/$(basename "$f")"
done
install -m 0644 contrib/systemd/vfud.sysusers "$root/lib/sysusers.d/vfud.conf"
generate man >"$root/share/man/man1/vfud.1"
generate completion >"$root/share/bash-completion/completions/vfud"
chmod 0644 "$root/share/man/man1/vfud.1" "$root/share/bash-completion/completions/vfud"
install -m 0644 README.md contrib/systemd/vfud.conf.example "$root/share/doc/vfud/"
echo "install: vfud installed under $root (descriptors in $DESTDIR$DESCRIPTORDIR)"
if [ -z "$DESTDIR" ]; then
  echo "install: create its system user with: systemd-sysusers $PREFIX/lib/sysusers.d/vfud.conf"
fi
