#!/usr/bin/env bash
# deno task compile: builds the single-file vfud executable, dist/vfud (VFUD_OUT to change).
#
# VFUD_BUILD=auto (default): `deno compile` (a standalone binary, runtime included); when that
#   cannot work (it downloads the `denort` runtime from Deno's servers unless DENORT_BIN names a
#   local copy, and machines without that network fail), fall back to "bundle".
# VFUD_BUILD=compile: deno compile or fail.
# VFUD_BUILD=bundle: `deno bundle` (esbuild, from the npm registry) into one JavaScript file
#   with a `#!/usr/bin/env -S deno run ...` line: one file, but it needs deno on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${VFUD_OUT:-dist/vfud}
mode=${VFUD_BUILD:-auto}
perms=(--allow-ffi --allow-read --allow-write --allow-env)
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$mode" in auto | compile | bundle) ;; *)
  echo "compile: VFUD_BUILD=$mode: expected auto, compile or bundle" >&2
  exit 2
  ;;
esac

if [ "$mode" != bundle ]; then
  if deno compile "${perms[@]}" --no-prompt --output "$tmp/vfud" main.ts >"$tmp/log" 2>&1; then
    mv "$tmp/vfud" "$out"
    echo "compile: built $out (standalone, deno compile)"
    exit 0
  fi
  if [ "$mode" = compile ]; then
    cat "$tmp/log" >&2
    exit 1
  fi
  echo "compile: deno compile failed:" >&2
  sed 's/\x1b\[[0-9;]*m//g' "$tmp/log" | grep -m4 -iE 'download|error' | sed 's/^ */  /' >&2 || true
  echo "compile: (it needs the denort runtime: network access, or DENORT_BIN=/path/to/denort)" >&2
  echo "compile: building a single-file bundle instead; it runs with the deno on PATH" >&2
fi

deno bundle --platform=deno --output "$tmp/vfud.js" main.ts >"$tmp/log" 2>&1 || {
  cat "$tmp/log" >&2
  exit 1
}
{
  echo "#!/usr/bin/env -S deno run ${perms[*]} --no-config --no-lock --no-prompt"
  echo "// vfud $(git describe --always --dirty 2>/dev/null || echo unknown): bundled by tools/compile.sh"
  cat "$tmp/vfud.js"
} >"$tmp/vfud"
chmod 0755 "$tmp/vfud"
mv "$tmp/vfud" "$out"
echo "compile: built $out (bundle; needs deno $(deno --version | awk 'NR==1{print $2}') on PATH)"
