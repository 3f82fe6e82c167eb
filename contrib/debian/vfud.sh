#!/bin/sh
# vfud, as the Debian package installs it: the single-file vfud bundle run by the Deno runtime
# shipped beside it in /usr/lib/vfud (a `deno compile` binary needs Deno's denort runtime, which
# only Deno's servers distribute; see README "Packaging").
lib=$(dirname "$(readlink -f "$0")")/../lib/vfud
DENO_NO_UPDATE_CHECK=1
export DENO_NO_UPDATE_CHECK
exec "$lib/deno" run --allow-ffi --allow-read --allow-write --allow-env \
  --no-config --no-lock --no-prompt "$lib/vfud.js" "$@"
