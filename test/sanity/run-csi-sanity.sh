#!/usr/bin/env bash
# Runs the real csi-sanity (kubernetes-csi/csi-test v5) against `pg-reflinker standalone` on a
# fresh XFS (reflink=1) loop filesystem. Needs root. csi-sanity is built from its Go module by
# test/cluster/tools/build.sh (PGR_CSI_SANITY, or the tools cache's manifest, or PATH). When it is
# missing the script says so and exits 0, except in CI (CI set), where it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

tools_cache=${PGR_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pg-reflinker/tools}
csi_sanity=${PGR_CSI_SANITY:-}
[ -n "$csi_sanity" ] || csi_sanity=$(sed -n 's/^PGR_CSI_SANITY=//p' "$tools_cache/manifest.env" 2>/dev/null || true)
[ -n "$csi_sanity" ] || csi_sanity=$(command -v csi-sanity || true)
if [ -z "$csi_sanity" ] || [ ! -x "$csi_sanity" ]; then
  echo "csi-sanity is not built: nothing run. Build it with test/cluster/tools/build.sh csi-sanity." >&2
  echo "(npm test runs our own conformance suite in test/sanity instead.)" >&2
  [ -z "${CI:-}" ] || exit 1
  exit 0
fi
echo "csi-sanity: $csi_sanity ($("$csi_sanity" --version 2>/dev/null | head -1))" >&2
[ "$(id -u)" = 0 ] || { echo "npm run sanity needs root (loop mount, bind mounts)" >&2; exit 1; }

work=$(mktemp -d /tmp/pgr-sanity.XXXXXX)
# The populator runs as an unprivileged uid (never root): it must be able to reach the volume root.
chmod 0755 "$work"
driver_pid=
driver_log=${PGR_SANITY_DRIVER_LOG:-/tmp/pg-reflinker-sanity-driver.log}
cleanup() {
  [ -f "$work/driver.log" ] && cp "$work/driver.log" "$driver_log" && echo "driver log: $driver_log" >&2
  [ -n "$driver_pid" ] && kill "$driver_pid" 2>/dev/null && wait "$driver_pid" 2>/dev/null || true
  grep -o " $work/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

truncate -s 2G "$work/fs.img"
mkfs.xfs -q -m reflink=1 "$work/fs.img"
mkdir -p "$work/mnt"
mount -o loop "$work/fs.img" "$work/mnt"
mkdir -p "$work/mnt/volumes"

node dist/src/main.js standalone --endpoint "unix://$work/csi.sock" --root "$work/mnt/volumes" \
  --node-id sanity-node 2>"$work/driver.log" &
driver_pid=$!
for _ in $(seq 100); do [ -S "$work/csi.sock" ] && break; sleep 0.1; done

"$csi_sanity" \
  --csi.endpoint "unix://$work/csi.sock" \
  --csi.mountdir "$work/target" \
  --csi.stagingdir "$work/staging" \
  --csi.testvolumesize 1073741824 \
  "$@"
