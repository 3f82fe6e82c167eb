#!/bin/bash
# build-guest.sh - build the guest's boot pieces from the trixie root made by setup.sh.
#
# Output in $VFUD_E2E_DIR/guest/ (default /var/tmp/vfud-e2e/guest/):
#   vmlinux          the uncompressed ELF kernel, booted by QEMU through its PVH entry (no
#                    bzImage decompressor: faster under TCG and safe on odd KVM layers)
#   base.cpio.zst    busybox-static, /init, the needed kernel modules (decompressed) and their
#                    load order (lib/modules/KV/load.list)
#   fio.cpio.zst     optional layer: /usr/bin/fio and every shared library it needs
#   kernel-version
# run-guest.sh concatenates base [+ fio] + a per-run layer (test scripts, env, data files): Linux
# unpacks concatenated cpio archives in order. Only tools of the root are used (busybox, zstd,
# modprobe, ldd), so the host needs nothing but bash and coreutils.
#
# Rebuilds only when an input changed (kernel, module list, init, this script); VFUD_FORCE=1
# rebuilds anyway. Env: VFUD_E2E_DIR, VFUD_GUEST_MODULES (default "virtio_blk e1000"
# plus virtio_pci, which is built into Debian's kernel; dependencies are added).
set -euo pipefail
E2E_TAG=build-guest
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
R=$E2E_ROOT
MODULES=${VFUD_GUEST_MODULES:-"virtio_pci virtio_blk e1000"}

e2e_require_root_fs
KV=$(ls "$R/lib/modules" | sort -V | tail -1)
[ -f "$R/boot/vmlinuz-$KV" ] || e2e_die "no $R/boot/vmlinuz-$KV"

STAMP_WANT="kv=$KV kernel=$(hash_of "$R/boot/vmlinuz-$KV") mods=[$MODULES] init=$(hash_of "$E2E_HERE/guest/init") build=$(hash_of "$0" "$E2E_HERE/lib.sh") setup=$(head -1 "$E2E_SETUP_STAMP" | md5sum | cut -c1-32)"
up_to_date() { [ -f "$E2E_GUEST/.stamp" ] && [ "$(cat "$E2E_GUEST/.stamp")" = "$STAMP_WANT" ]; }
if [ "${VFUD_FORCE:-0}" != 1 ] && up_to_date; then
  e2e_log "up to date: $E2E_GUEST"
  exit 0
fi
exec 9>"$E2E_DIR/.build-guest.lock"
flock -w 600 9 || e2e_die "timed out waiting for another build-guest.sh"
if [ "${VFUD_FORCE:-0}" != 1 ] && up_to_date; then e2e_log "up to date (built concurrently)"; exit 0; fi

OUT=$E2E_GUEST.tmp.$$
W=$(mktemp -d "${TMPDIR:-/tmp}/vfud-build-guest.XXXXXX")
trap 'rm -rf "$W" "$OUT"' EXIT
mkdir -p "$OUT"
zst() { rootrun /usr/bin/zstd "$@"; }

# ---------- vmlinux: the payload of the bzImage, located through its setup header ----------
# setup_sects @0x1f1 (u8), "HdrS" @0x202, payload_offset @0x248 (u32), payload_length @0x24c (u32);
# the payload starts (setup_sects+1)*512 + payload_offset bytes into the file.
BZ=$R/boot/vmlinuz-$KV
u32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
[ "$(dd if="$BZ" bs=1 skip=$((0x202)) count=4 2>/dev/null)" = HdrS ] || e2e_die "$BZ is not a bzImage"
SS=$(od -An -t u1 -j $((0x1f1)) -N 1 "$BZ" | tr -d ' ')
[ "$SS" = 0 ] && SS=4
POFF=$(((SS + 1) * 512 + $(u32 "$BZ" $((0x248)))))
PLEN=$(u32 "$BZ" $((0x24c)))
dd if="$BZ" of="$W/payload" bs=64K iflag=skip_bytes,count_bytes skip="$POFF" count="$PLEN" status=none
# zstd and xz payloads carry the decompressed size as 4 trailing bytes (the kernel's size_append)
case $(od -An -t x1 -N 4 "$W/payload" | tr -d ' ') in
  28b52ffd) truncate -s -4 "$W/payload"; zst -q -d -c "$W/payload" > "$OUT/vmlinux" ;;
  fd377a58) truncate -s -4 "$W/payload"; bb xz -d -c < "$W/payload" > "$OUT/vmlinux" ;;
  1f8b08*) bb gzip -d -c < "$W/payload" > "$OUT/vmlinux" 2>/dev/null || true ;;
  *) e2e_die "unknown kernel payload compression in $BZ" ;;
esac
[ "$(od -An -t x1 -N 4 "$OUT/vmlinux" | tr -d ' ')" = 7f454c46 ] || e2e_die "extracted vmlinux is not an ELF file"
rm -f "$W/payload"

# mkcpio DIR OUT: newc archive of DIR, zstd-compressed, padded to 512 bytes (the kernel wants each
# archive of a concatenation to start 4-byte aligned)
mkcpio() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | bb cpio -o -H newc 2>/dev/null) | zst -q -T0 -9 -c > "$2"
  truncate -s %512 "$2"
}

# ---------- base layer ----------
B=$W/base
mkdir -p "$B"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,mnt,etc,root,data,lib/modules/"$KV"}
# the kernel opens /dev/console before it runs /init; /init mounts devtmpfs anyway, so a host
# that forbids mknod still gets a working (if quieter) guest
mknod -m 600 "$B/dev/console" c 5 1 2>/dev/null || e2e_log "WARNING: cannot mknod /dev/console"
mknod -m 666 "$B/dev/null" c 1 3 2>/dev/null || true
cp "$R/usr/bin/busybox" "$B/bin/busybox"
ln -s busybox "$B/bin/sh"
cp "$E2E_HERE/guest/init" "$B/init"
chmod 755 "$B/init"
echo "root:x:0:0:root:/root:/bin/sh" > "$B/etc/passwd"
echo "root:x:0:" > "$B/etc/group"

# modules in load order (dependencies first), as the root's modprobe resolves them
: > "$B/lib/modules/$KV/load.list"
declare -A SEEN=()
for m in $MODULES; do
  DEPS=$(chroot "$R" /usr/sbin/modprobe -S "$KV" --show-depends "$m" 2>&1) || e2e_die "module $m: $DEPS"
  while read -r kind path _; do
    case $kind in
      builtin) e2e_log "$m is built into the kernel" ;;
      insmod)
        [ -n "${SEEN[$path]:-}" ] && continue
        SEEN[$path]=1
        base=$(basename "$path")
        case $base in
          *.ko.xz) bb xz -d -c < "$R$path" > "$B/lib/modules/$KV/${base%.xz}" ;;
          *.ko.zst) zst -q -d -c "$R$path" > "$B/lib/modules/$KV/${base%.zst}" ;;
          *.ko.gz) bb gzip -d -c < "$R$path" > "$B/lib/modules/$KV/${base%.gz}" ;;
          *.ko) cp "$R$path" "$B/lib/modules/$KV/$base" ;;
          *) e2e_die "unexpected module file $path" ;;
        esac
        echo "${base%.ko*}.ko" >> "$B/lib/modules/$KV/load.list"
        ;;
      *) e2e_die "module $m: unexpected modprobe output: $kind $path" ;;
    esac
  done <<< "$DEPS"
done
e2e_log "modules (load order): $(tr '\n' ' ' < "$B/lib/modules/$KV/load.list")"
mkcpio "$B" "$OUT/base.cpio.zst"

# ---------- fio layer ----------
F=$W/fio
mkdir -p "$F/usr/bin" "$F/lib64"
cp "$R/usr/bin/fio" "$F/usr/bin/fio"
# the root's ldd lists the whole closure; libraries keep the paths ldd printed, as real files,
# so the guest needs no merged-/usr symlinks
LIBS=$(chroot "$R" /usr/bin/ldd /usr/bin/fio) || e2e_die "ldd fio failed: $LIBS"
awk '/=> \// {print $3} /^[ \t]*\/lib64\// {print $1}' <<< "$LIBS" | sort -u | while read -r lib; do
  mkdir -p "$F$(dirname "$lib")"
  cp -L "$R$lib" "$F$lib"
done
[ -e "$F/lib64/ld-linux-x86-64.so.2" ] || cp -L "$R/lib64/ld-linux-x86-64.so.2" "$F/lib64/"
mkcpio "$F" "$OUT/fio.cpio.zst"

echo "$KV" > "$OUT/kernel-version"
echo "$STAMP_WANT" > "$OUT/.stamp"
rm -rf "$E2E_GUEST.old"
[ -d "$E2E_GUEST" ] && mv "$E2E_GUEST" "$E2E_GUEST.old"
mv "$OUT" "$E2E_GUEST"
rm -rf "$E2E_GUEST.old"
e2e_log "built $E2E_GUEST: $(cd "$E2E_GUEST" && du -h vmlinux base.cpio.zst fio.cpio.zst | tr '\t\n' ': ')"
