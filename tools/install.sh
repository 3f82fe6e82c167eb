#!/usr/bin/env bash
# deno task install: installs vfud under DESTDIR/PREFIX (default PREFIX=/usr/local):
#   PREFIX/bin/vfud                               the executable (built by tools/compile.sh
#                                                 unless VFUD_BINARY names one)
#   PREFIX/share/vfio-user/50-vfud-*.json         backend descriptors ("binary" = PREFIX/bin/vfud)
#   PREFIX/lib/systemd/system/vfud@.{service,socket}   units (ExecStart = PREFIX/bin/vfud)
#   PREFIX/share/doc/vfud/{README.md,vfud.conf.example}
# Configuration (/etc/vfud/INSTANCE.conf) is the administrator's: nothing is written to /etc.
#
#   sudo deno task install                    # /usr/local
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
bin="$PREFIX/bin/vfud"
root="$DESTDIR$PREFIX"

binary=${VFUD_BINARY:-dist/vfud}
if [ -z "${VFUD_BINARY:-}" ]; then bash tools/compile.sh; fi
[ -x "$binary" ] || {
  echo "install: $binary is not an executable" >&2
  exit 1
}

install -d "$root/bin" "$root/share/vfio-user" "$root/lib/systemd/system" "$root/share/doc/vfud"
install -m 0755 "$binary" "$root/bin/vfud"
for f in contrib/vfio-user/[0-9]*.json; do
  sed "s|\"/usr/bin/vfud\"|\"$bin\"|" "$f" >"$root/share/vfio-user/$(basename "$f")"
  chmod 0644 "$root/share/vfio-user/$(basename "$f")"
done
install -m 0644 contrib/vfio-user/vfio-user.schema.json "$root/share/doc/vfud/"
for f in contrib/systemd/vfud@.service contrib/systemd/vfud@.socket; do
  sed "s|/usr/bin/vfud|$bin|g; s|file:///usr/share/doc/vfud/|file://$PREFIX/share/doc/vfud/|g" \
    "$f" >"$root/lib/systemd/system/$(basename "$f")"
  chmod 0644 "$root/lib/systemd/system/$(basename "$f")"
done
install -m 0644 README.md contrib/systemd/vfud.conf.example "$root/share/doc/vfud/"
echo "install: vfud installed under $root"
