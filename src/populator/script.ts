import { SESSION_KEEPALIVES } from './conninfo.js';
import { FAILURE_PREFIX, LABEL_PATTERN, POPULATED_MARKER, SLOT_PREFIX, STAGING_DIR, WORK_DIR_PREFIX } from './layout.js';

/**
 * The populator: ONE bash script that fills a clone volume. The local backend runs it as a child
 * process (`bash <file>`); the Kubernetes backend in a Job on the source's node, in the source
 * Cluster's PostgreSQL image for an online copy and in the driver's own image for a plain one
 * (bash, coreutils, findutils, grep, and psql when online; no node).
 *
 * Inputs are environment variables only (PopulatorEnv, env.ts). Contract:
 * - success: exit 0, `$PGR_VOLUME_DIR/pgdata` (online) or the copied volume entries (plain) appear
 *   by rename, then `$PGR_VOLUME_DIR/.pgr-populated` holds the result; stdout is ONE JSON line
 *   (PopulatorResult, see result.ts). Running again on a populated volume with the same label
 *   prints the recorded line and exits 0.
 * - failure: exit 1, nothing new in `$PGR_VOLUME_DIR` (the staging directory is removed), ONE line
 *   `pg-reflinker populate: <reason>` on stderr.
 * The names it shares with its callers (layout.ts) are put into the text below from TypeScript.
 */

/** The server's side of SESSION_KEEPALIVES, as the session's SET statements (libpq's settings are the client's). */
function serverKeepalives(): string {
  const k = SESSION_KEEPALIVES;
  return [
    `SET tcp_keepalives_idle = ${k.keepalives_idle};`,
    `SET tcp_keepalives_interval = ${k.keepalives_interval};`,
    `SET tcp_keepalives_count = ${k.keepalives_count};`,
    `SET tcp_user_timeout = ${k.tcp_user_timeout};`,
  ].join('\n');
}

/** The script text (the same for every clone; all inputs come from the environment). */
export function renderPopulatorScript(): string {
  // The text is a String.raw template so that psql's backslash commands read as they are;
  // "\`" and "\${" stand for bash's backtick and "${".
  return SCRIPT.replaceAll('\\`', '`').replaceAll('\\${', '${');
}

const SCRIPT = String.raw`#!/usr/bin/env bash
# pg-reflinker populator (rendered by src/populator/script.ts; inputs: PGR_* variables, see src/populator/env.ts).
#   online: a database-consistent reflink clone of a live PGDATA inside ONE psql session
#           (temporary slot, pg_backup_start, copy, pg_backup_stop, WAL re-copy, backup_label).
#   plain:  a reflink copy of a whole volume directory that no server is using.
# Success: the result appears in $PGR_VOLUME_DIR by rename; one JSON line on stdout.
# Failure: nothing left behind; one "pg-reflinker populate: <reason>" line on stderr; exit 1.
# Everything the source volume and its server say is untrusted: the source is pinned by identity,
# server values are checked against strict patterns before use, no symlink is written through,
# and nothing published refers to a path outside the clone.
set -Eeuo pipefail
umask 077
shopt -s nullglob dotglob

PGR_REPORTED= PGR_LAST_ERR= PGR_PSQL_PID= PGR_CP_PID= PGR_STEP= PGR_WORK= PGR_STAGE= PGR_OWN_WORK=
PGR_T0=$(date +%s%N)

pgr_oneline() { printf '%s' "$*" | tr '\n\t\r' '   ' | tr -s ' ' | cut -c1-2000; }

# In the main process: report and exit. In a step (run from psql): leave the reason for the main process.
pgr_fail() {
  local reason
  reason=$(pgr_oneline "$*")
  if [ -n "$PGR_STEP" ]; then
    printf '%s\n' "$reason" >"$PGR_WORK/reason"
  else
    PGR_REPORTED=1
    printf '${FAILURE_PREFIX}%s\n' "$reason" >&3
  fi
  exit 1
}

pgr_fstype() { stat -f -c %T "$1" 2>/dev/null || echo unknown; }
pgr_secs() { printf '%d.%03d' $(($1 / 1000000000)) $(($1 % 1000000000 / 1000000)); }
pgr_lsn() { local hi=\${1%/*} lo=\${1#*/}; echo $(((16#$hi << 32) + 16#$lo)); }

pgr_reflink_failure() { # $1 source, $2 cp's message
  pgr_fail "reflink copy not possible from $1 (filesystem $(pgr_fstype "$1")) to $PGR_VOLUME_DIR (filesystem $(pgr_fstype "$PGR_VOLUME_DIR")): $2; source and clone must share one XFS (reflink=1) or btrfs filesystem (and, on Linux before 5.18, one mount)"
}

# cp with --reflink; "tolerant" accepts source files that vanish during the copy (a live PGDATA drops
# relations and temp files and recycles WAL; cp then says "No such file or directory" and exits 1).
pgr_cp() { # tolerant|strict cp-arguments... (the last two: source, destination)
  local mode=$1 rc=0 bad src
  shift
  src=\${@: -2:1}
  cp "$@" 2>"$PGR_WORK/cp.err" 3>&- 4>&- &
  PGR_CP_PID=$!
  wait "$PGR_CP_PID" || rc=$?
  PGR_CP_PID=
  if [ "$rc" -eq 0 ]; then return 0; fi
  bad=$(grep -Ev "^cp: cannot (stat|open|access|read symbolic link) .*: No such file or directory$" "$PGR_WORK/cp.err" | head -n 1 || true)
  if [ "$mode" = tolerant ] && [ "$rc" -eq 1 ] && [ -s "$PGR_WORK/cp.err" ] && [ -z "$bad" ]; then
    echo "tolerated $(wc -l <"$PGR_WORK/cp.err") files that vanished during the copy" >&2
    return 0
  fi
  if [ -z "$bad" ]; then bad=$(head -n 1 "$PGR_WORK/cp.err"); fi
  pgr_copy_failure "$src" "$bad"
  pgr_fail "copy of $src failed (cp exit $rc): \${bad:-no message}"
}

# What a failed cp said, as the failure it is: a full filesystem and an I/O error are not reflink problems.
pgr_copy_failure() { # source cp's-message
  case $2 in
    *"No space left on device"* | *"Disk quota exceeded"*)
      pgr_fail "no space left on the clone's filesystem ($(pgr_fstype "$PGR_VOLUME_DIR") at $PGR_VOLUME_DIR) while copying $1: $2" ;;
    *"Input/output error"*)
      pgr_fail "I/O error while copying $1: $2" ;;
    *"failed to clone"* | *"Operation not supported"* | *"Invalid cross-device link"* | *"Inappropriate ioctl"*)
      pgr_reflink_failure "$1" "$2" ;;
  esac
}

# Fails before any work (no backup started) when the destination cannot share extents with the source.
pgr_probe_reflink() { # source-file-or-dir destination-dir
  local file=$1
  if [ -d "$file" ]; then file=$(find "$1" -type f -size +0 -print -quit 2>/dev/null || true); fi
  if [ -z "$file" ]; then return 0; fi
  # Bounded: a file swapped for a FIFO after find would hold cp forever.
  if ! timeout 60 cp --reflink=always "$file" "$2/.pgr-reflink-probe" 2>"$PGR_WORK/probe.err" 3>&- 4>&-; then
    pgr_copy_failure "$(dirname "$file")" "$(head -n 1 "$PGR_WORK/probe.err")"
    pgr_reflink_failure "$(dirname "$file")" "$(head -n 1 "$PGR_WORK/probe.err")"
  fi
  rm -f "$2/.pgr-reflink-probe"
}

# ---- the source, pinned: checked once, then only read through the working directory ----

pgr_id() { stat -c '%d:%i' -- "$1"; }

# Main process, once: the source must be a real directory (never a symlink) and, when the caller
# resolved it (PGR_SOURCE_ID), that very directory.
pgr_pin_source() { # dir
  local id
  if [ -L "$1" ]; then pgr_fail "refusing to clone: source $1 is a symbolic link"; fi
  if [ ! -d "$1" ]; then pgr_fail "source $1 is not a directory"; fi
  id=$(pgr_id "$1")
  if [ -n "\${PGR_SOURCE_ID:-}" ] && [ "$id" != "$PGR_SOURCE_ID" ]; then
    pgr_fail "refusing to clone: source $1 is not the directory the driver resolved (device:inode $id, not $PGR_SOURCE_ID); it was replaced"
  fi
  PGR_SOURCE_ROOT=$1 PGR_SOURCE_PINNED=$id
  export PGR_SOURCE_ROOT PGR_SOURCE_PINNED
}

# Makes the pinned source the working directory; reads then go through "." and cannot be redirected
# by a link swapped in later.
pgr_enter_source() {
  cd -P -- "$PGR_SOURCE_ROOT" 2>/dev/null || pgr_fail "refusing to clone: source $PGR_SOURCE_ROOT is gone"
  if [ "$(pgr_id .)" != "$PGR_SOURCE_PINNED" ]; then pgr_fail "refusing to clone: source $PGR_SOURCE_ROOT was replaced during the population"; fi
}

# ---- tablespaces: a clone never shares its source's ----

# The path inside the source volume of the directory a pg_tblspc link leads to, found by walking up
# from it until the volume's own directory (so bind mounts and any spelling of the path agree).
# Prints the path, or why it cannot be copied (exit 1). Run it in a subshell: it changes directory.
pgr_place_in_volume() { # link volume-id
  local depth phys i rel=
  local -a parts
  cd -P -- "$1" 2>/dev/null || { echo "not reachable from the populator"; return 1; }
  phys=$(pwd -P)
  for ((depth = 0; depth < 64; depth++)); do
    if [ "$(pgr_id .)" = "$2" ]; then break; fi
    if [ "$(pwd -P)" = / ]; then echo "outside the source volume"; return 1; fi
    cd -P .. || return 1
  done
  if ((depth == 0 || depth >= 64)); then echo "not a directory inside the source volume"; return 1; fi
  if [[ $phys == *$'\n'* ]]; then echo "a path the populator does not handle"; return 1; fi
  IFS=/ read -r -a parts <<<"$phys"
  for ((i = \${#parts[@]} - depth; i < \${#parts[@]}; i++)); do rel+=\${rel:+/}\${parts[i]}; done
  if ! [[ $rel =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)*$ ]] || [[ /$rel/ == */../* || /$rel/ == */./* ]] ||
    [[ $rel == pgdata || $rel == pgdata/pg_tblspc* || $rel == work || $rel == work/* || $rel == result.json || $rel == volume || $rel == volume/* ]]; then
    echo "inside the volume at $rel, a path the populator does not handle"
    return 1
  fi
  echo "$rel"
}

# Run with the pinned source as working directory. Every tablespace link of the source's PGDATA
# must lead inside the source volume: such tablespaces are recorded as "oid device:inode path" in
# $PGR_WORK/tablespaces (the clone mirrors the path); any other refuses the clone, by name where
# $PGR_WORK/tablespace-names ("oid name" lines from the server) has one.
pgr_check_tablespaces() { # pgdata (relative) volume-id
  local e oid target place name refused=
  : >"$PGR_WORK/tablespaces"
  if [ -L "$1" ]; then pgr_fail "refusing to clone: $1 in the source volume is a symbolic link"; fi
  for e in "$1"/pg_tblspc/*; do
    oid=\${e##*/}
    if ! [[ $oid =~ ^[0-9]{1,10}$ ]]; then refused+="; unexpected entry pg_tblspc/$oid"; continue; fi
    if [ ! -L "$e" ] && [ -d "$e" ]; then continue; fi # in place: copied with the data directory
    if [ ! -L "$e" ]; then refused+="; unexpected entry pg_tblspc/$oid"; continue; fi
    target=$(readlink -- "$e")
    name=$(grep -m 1 "^$oid " "$PGR_WORK/tablespace-names" 2>/dev/null | cut -d ' ' -f 2- || true)
    name="tablespace \${name:+\"$name\" }(oid $oid)"
    if place=$(pgr_place_in_volume "$e" "$2"); then
      printf '%s %s %s\n' "$oid" "$(cd -P -- "$e" && pgr_id .)" "$place" >>"$PGR_WORK/tablespaces"
    else
      refused+="; $name at $target: $place"
    fi
  done
  if [ -n "$refused" ]; then
    pgr_fail "refusing to clone: the source has tablespaces a clone cannot copy (\${refused#; }). A clone copies only tablespaces that lie inside the source's volume; one that kept a link to the source's tablespace would write into the source's files. Move such tablespaces into the source's volume, or clone a source without them"
  fi
}

# Gives the staged PGDATA its own copies of the source's tablespaces: each link becomes the relative
# link "../../<path>", to the same place inside the clone's volume. "copy" also copies the data
# (online: only PGDATA was copied); "link" only relinks (plain: the whole volume was copied).
# Run with the pinned source as working directory.
pgr_relink_tablespaces() { # pgdata (relative) staged-pgdata staged-volume copy|link
  local oid id rel
  while read -r oid id rel; do
    if [ "$4" = copy ] && [[ $rel != pgdata/* ]]; then
      cd -P -- "$1/pg_tblspc/$oid" 2>/dev/null || pgr_fail "tablespace oid $oid vanished during the copy"
      if [ "$(pgr_id .)" != "$id" ]; then pgr_fail "refusing to clone: tablespace oid $oid was replaced during the copy"; fi
      mkdir -p -- "$3/$rel"
      pgr_chown_path "$3" "$rel"
      pgr_cp tolerant -a --reflink=always ./. "$3/$rel/"
      pgr_enter_source
    fi
    rm -f -- "$2/pg_tblspc/$oid"
    ln -s -- "../../$rel" "$2/pg_tblspc/$oid"
  done <"$PGR_WORK/tablespaces"
}

# After pg_backup_stop: every tablespace in the backup's map must be one that was copied.
pgr_check_tablespace_map() { # has-map oids
  local oid
  if ! [[ $2 =~ ^[0-9\ ]*$ ]]; then pgr_fail "the server returned a malformed tablespace map"; fi
  if [ "$1" = t ] && [ -z "\${2// /}" ]; then pgr_fail "the server returned a tablespace map that names no tablespace"; fi
  for oid in $2; do
    if ! grep -q "^$oid " "$PGR_WORK/tablespaces"; then
      pgr_fail "refusing to publish the clone: the backup's tablespace map names tablespace oid $oid, which was not there when the copy began (created during the copy); nothing was published"
    fi
  done
}

# Nothing published may lead outside the clone: every symbolic link must be relative and lead, as
# written and as the kernel resolves it, to a place inside the staged result.
pgr_audit_links() { # staged-root [excluded-subdirectory]
  local root l target lexical physical
  root=$(realpath -e -- "$1")
  while IFS= read -r -d '' l; do
    target=$(readlink -- "$l")
    lexical=$(realpath -m -s -- "$(dirname -- "$l")/$target")
    physical=$(realpath -e -- "$l" 2>/dev/null || true)
    if [[ $target == /* || $lexical != "$physical" || $lexical != "$root"/* ]]; then
      pgr_fail "refusing to clone: \${l#"$root"/} is a symbolic link to $target, which leads outside the clone (a clone never refers to its source's files; CloudNativePG's walStorage and tablespaces on other volumes cannot be copied)"
    fi
  done < <(find "$root" -path "$root/\${2:-/}" -prune -o -type l -print0)
}

# Values from the server are checked before any use (bash arithmetic would execute "$(...)" in them).
pgr_check_lsn() { [[ $2 =~ ^[0-9A-F]{1,8}/[0-9A-F]{1,8}$ ]] || pgr_fail "the server returned a malformed $1: '$2'"; }
pgr_check_number() { [[ $2 =~ ^[0-9]{1,10}$ ]] || pgr_fail "the server returned a malformed $1: '$2'"; }
pgr_check_segsize() {
  pgr_check_number wal_segment_size "$1"
  if (($1 < 1048576 || $1 > 1073741824 || ($1 & ($1 - 1)) != 0)); then pgr_fail "the server returned an impossible wal_segment_size: $1"; fi
}

# ---- steps: run by psql (\set x \`...\`) inside the backup session, as "bash $PGR_STEPS <step>" ----

pgr_step() {
  PGR_STEP=$1
  exec >/dev/null 2>>"$PGR_WORK/log"
  echo $$ >"$PGR_WORK/step.pid"
  trap 'rm -f "$PGR_WORK/step.pid"' EXIT
  trap 'if [ -n "$PGR_CP_PID" ]; then kill "$PGR_CP_PID" 2>/dev/null || true; fi; exit 143' TERM INT HUP
  case $1 in
    tablespaces) pgr_enter_source && pgr_check_tablespaces . "$(pgr_id ..)" ;;
    copy-tree) pgr_step_copy_tree ;;
    wal) pgr_step_wal ;;
    *) pgr_fail "unknown step $1" ;;
  esac
}

pgr_step_copy_tree() {
  local t0 dst=$PGR_STAGE/pgdata
  t0=$(date +%s%N)
  pgr_enter_source
  pgr_cp tolerant -a --reflink=always ./. "$dst/"
  pgr_relink_tablespaces . "$dst" "$PGR_STAGE" copy
  # pg_control last, as basebackup.c does: on a standby its minRecoveryPoint is the end of the backup.
  pgr_cp strict -a --reflink=always ./global/pg_control "$dst/global/pg_control"
  echo $(($(date +%s%N) - t0)) >"$PGR_WORK/copy.ns"
}

# WAL from the start LSN's segment to the segment holding stop_lsn-1, copied after pg_backup_stop
# (the copy made with the tree is too early), any timeline, plus history files; marked .done so the
# clone never archives the source's WAL.
pgr_step_wal() {
  local t0 seg=$PGR_WAL_SEGSIZE per first last src=./pg_wal dst=$PGR_STAGE/pgdata/pg_wal summaries=
  local f n segno name off
  local -a files=()
  t0=$(date +%s%N)
  pgr_check_segsize "$seg"
  pgr_check_lsn "start LSN" "$PGR_START_LSN"
  pgr_check_lsn "stop LSN" "$PGR_STOP_LSN"
  pgr_check_number timeline "$PGR_TIMELINE"
  pgr_enter_source
  per=$((0x100000000 / seg))
  first=$(($(pgr_lsn "$PGR_START_LSN") / seg))
  last=$((($(pgr_lsn "$PGR_STOP_LSN") - 1) / seg))
  if ((last < first)); then last=$first; fi
  # A symlinked pg_wal (CNPG walStorage) becomes a real directory in the clone, and so do its
  # subdirectories: nothing below is ever written through a link.
  if [ -L "$dst" ] || [ ! -d "$dst" ]; then rm -rf -- "$dst"; mkdir -- "$dst"; fi
  if [ -d "$dst/summaries" ] && [ ! -L "$dst/summaries" ]; then summaries=1; fi
  find "$dst" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
  mkdir -- "$dst/archive_status"
  if [ -n "$summaries" ]; then mkdir -- "$dst/summaries"; fi
  for f in "$src"/*; do
    n=\${f##*/}
    if [ -L "$f" ] || [ ! -f "$f" ]; then continue; fi
    if [[ $n =~ ^[0-9A-F]{24}$ ]]; then
      segno=$((16#\${n:8:8} * per + 16#\${n:16:8}))
      if ((segno >= first && segno <= last)); then files+=("$f"); fi
    elif [[ $n =~ ^[0-9A-F]{8}\.history$ ]]; then
      files+=("$f")
    fi
  done
  # Only reflink when possible here: with walStorage, pg_wal may live on another volume.
  if ((\${#files[@]} > 0)); then pgr_cp tolerant -a --reflink=auto "\${files[@]}" "$dst/"; fi
  for ((segno = first; segno <= last; segno++)); do
    name=$(printf '%08X%08X' $((segno / per)) $((segno % per)))
    if ! compgen -G "$dst/????????$name" >/dev/null; then
      pgr_fail "WAL segment $(printf '%08X' "$PGR_TIMELINE")$name (needed from $PGR_START_LSN to $PGR_STOP_LSN) is missing from $PGR_SOURCE_PGDATA/pg_wal: removed before it could be copied"
    fi
  done
  # The clone holds WAL up to the stop LSN and nothing after it: a standby's last segment goes on
  # past the stop LSN (no segment switch there), and the clone would replay whatever it finds.
  name=$(printf '%08X%08X' $((last / per)) $((last % per)))
  off=$(($(pgr_lsn "$PGR_STOP_LSN") - last * seg))
  for f in "$dst"/????????$name; do
    if ((off < seg)); then truncate -s "$off" -- "$f" && truncate -s "$seg" -- "$f"; fi
  done
  for f in "$dst"/*; do
    if [ -f "$f" ]; then : >"$dst/archive_status/\${f##*/}.done"; fi
  done
  pgr_check_tablespace_records "$dst" "$name"
  echo $(($(date +%s%N) - t0)) >"$PGR_WORK/wal.ns"
}

# A tablespace created or dropped between the backup's start (its checkpoint's redo point) and its
# stop is replayed by the clone at the path the source used: the clone's recovery would remove and
# recreate the source's tablespace directories. The backup's own WAL, which the clone replays, says
# whether that happened; it is read timeline by timeline (pg_waldump follows none).
pgr_check_tablespace_records() { # copied-pg_wal last-segment-name
  local f tli=$PGR_TIMELINE stop_tli=$PGR_TIMELINE from to begin line parent switch
  if ! command -v pg_waldump >/dev/null; then
    echo "pg_waldump not found: tablespace changes during the copy are checked by the tablespace list only" >&2
    return 0
  fi
  for f in "$1"/????????$2; do
    if ((16#\${f: -24:8} > stop_tli)); then stop_tli=$((16#\${f: -24:8})); fi
  done
  begin=$(pgr_lsn "$PGR_START_LSN")
  if ((stop_tli != tli)); then
    f=$1/$(printf '%08X' "$stop_tli").history
    if [ ! -f "$f" ]; then pgr_fail "the backup's WAL switches to timeline $stop_tli, but its history file is missing"; fi
    while IFS= read -r line; do
      if [[ -z $line || $line == '#'* ]]; then continue; fi
      if ! [[ $line =~ ^([0-9]{1,10})[[:space:]]+([0-9A-F]{1,8}/[0-9A-F]{1,8}) ]]; then pgr_fail "malformed timeline history $f"; fi
      parent=\${BASH_REMATCH[1]} switch=$(pgr_lsn "\${BASH_REMATCH[2]}")
      if ((parent < tli || switch <= begin)); then continue; fi
      pgr_waldump_tablespaces "$1" "$parent" "$begin" "$switch"
      begin=$switch
    done <"$f"
  fi
  pgr_waldump_tablespaces "$1" "$stop_tli" "$begin" "$(pgr_lsn "$PGR_STOP_LSN")"
}

pgr_lsn_text() { printf '%X/%X' $(($1 >> 32)) $(($1 & 0xFFFFFFFF)); }

pgr_waldump_tablespaces() { # pg_wal timeline from to (LSNs as numbers)
  local out from to
  from=$(pgr_lsn_text "$3") to=$(pgr_lsn_text "$4")
  if (($3 >= $4)); then return 0; fi
  if ! out=$(pg_waldump --path="$1" --timeline="$2" --start="$from" --end="$to" --rmgr=Tablespace 2>&1); then
    pgr_fail "could not read the backup's WAL from $from to $to on timeline $2 to check it for tablespace changes: $(printf '%s' "$out" | tail -n 1)"
  fi
  if grep -q '^rmgr: Tablespace' <<<"$out"; then
    pgr_fail "refusing to publish the clone: a tablespace was created or dropped between the source's last checkpoint and the end of the copy ($(grep -m 1 '^rmgr: Tablespace' <<<"$out" | sed 's/.*desc: //')); the clone would replay it at the source's path. Nothing was published; try again after the source's next checkpoint"
  fi
}

# ---- main process ----

pgr_stop_children() {
  local pid i
  if [ -n "$PGR_PSQL_PID" ]; then kill "$PGR_PSQL_PID" 2>/dev/null || true; wait "$PGR_PSQL_PID" 2>/dev/null || true; fi
  if [ -n "$PGR_CP_PID" ]; then kill "$PGR_CP_PID" 2>/dev/null || true; wait "$PGR_CP_PID" 2>/dev/null || true; fi
  # A step outlives a killed psql: stop it before its files go.
  pid=$(cat "$PGR_WORK/step.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
    for ((i = 0; i < 100; i++)); do
      if ! kill -0 "$pid" 2>/dev/null; then return 0; fi
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

pgr_cleanup() {
  local rc=$?
  set +e
  trap - ERR
  if [ -n "$PGR_WORK" ]; then pgr_stop_children; fi
  if [ "$rc" -ne 0 ] && [ -z "$PGR_REPORTED" ]; then
    printf '${FAILURE_PREFIX}%s\n' "$(pgr_oneline "unexpected failure (exit $rc) at \${PGR_LAST_ERR:-?}: $(tail -n 1 "$PGR_WORK/log" 2>/dev/null)")" >&3
  fi
  if [ -n "$PGR_STAGE" ]; then rm -rf -- "$PGR_STAGE"; fi
  # A caller-provided work area keeps the log of a failed run.
  if [ -n "$PGR_OWN_WORK" ] && { [ "$rc" -eq 0 ] || [ -z "$PGR_WORK_DIR" ]; }; then rm -rf -- "$PGR_OWN_WORK"; fi
  exit "$rc"
}

pgr_is_root() { [ "$(id -u)" = 0 ]; }

pgr_chown() { if pgr_is_root; then chown "$PGR_UID:$PGR_GID" "$@"; fi; }

# Every directory of a relative path under a base (made by this script) goes to the clone's owner.
pgr_chown_path() { # base relative-path
  local path=$1 part
  local -a parts
  IFS=/ read -r -a parts <<<"$2"
  for part in "\${parts[@]}"; do
    path+=/$part
    pgr_chown "$path"
  done
}

pgr_write_steps() {
  {
    echo 'set -Eeuo pipefail'
    echo 'umask 077'
    echo 'shopt -s nullglob dotglob'
    echo 'PGR_CP_PID= PGR_STEP='
    declare -f
    echo 'pgr_step "$@"'
  } >"$PGR_WORK/steps.sh"
  export PGR_STEPS=$PGR_WORK/steps.sh
}

# Removes what a fresh base backup must not contain (basebackup.c's exclusions), keeping the directories.
pgr_clean_pgdata() {
  local p=$1 d
  local -a entries
  rm -f -- "$p/postmaster.pid" "$p/postmaster.opts" "$p/standby.signal" "$p/recovery.signal" "$p/recovery.conf" \
    "$p/backup_label" "$p/backup_label.old" "$p/tablespace_map" "$p/tablespace_map.old" "$p/backup_manifest" \
    "$p/postgresql.auto.conf.tmp" "$p/current_logfiles.tmp"
  for d in pg_replslot pg_stat_tmp pg_dynshmem pg_notify pg_serial pg_snapshots pg_subtrans; do
    if [ -L "$p/$d" ]; then
      rm -f -- "$p/$d"
      mkdir -m 0700 -- "$p/$d"
    elif [ -d "$p/$d" ]; then
      # Usually empty: a glob (nullglob, dotglob) finds that without starting a process.
      entries=("$p/$d"/*)
      if ((\${#entries[@]} > 0)); then rm -rf -- "\${entries[@]}"; fi
    fi
  done
  find "$p" \( -name 'pgsql_tmp*' -prune -exec rm -rf -- {} + \) \
    -o \( -type f -name 'pg_internal.init*' -exec rm -f -- {} + \) \
    -o \( -type s -name '.s.PGSQL.*' -exec rm -f -- {} + \)
}

# Durability without syncfs (which would flush every neighbour's dirty data, the live source's
# included): the clone's own files, then its marker, each with fsync.
# - XFS: its log is one sequence, and an fsync forces it up to that inode's last change, with
#   every earlier transaction of the filesystem (the reflinks, chowns, renames and directory
#   entries of this run included); a log write flushes the device cache first, so the shared data
#   blocks the reflinks point at are on disk too. So: fsync of the files this script wrote data
#   into (their data is not in any log), and the marker's fsyncs (below) cover all the rest. Not
#   each file: an XFS fsync that finds nothing to force still flushes the device cache, once per
#   file (measured: ~0.7 s more per clone than syncfs under load).
# - Anything else (btrfs logs each fsynced inode on its own, in its log tree): fsync of every
#   regular file and directory of the result.
# One walk of the staged result counts its files and bytes (and does those fsyncs elsewhere).
# PGR_DURABILITY=syncfs (a benchmark control only) syncs the whole filesystem instead, as before.
pgr_durable_count() { # dirs... -> PGR_FILES, PGR_BYTES; PGR_WRITTEN: files whose data this script wrote
  local kind size
  local -a fsync=(-exec sync -- {} +)
  if [ "\${PGR_DURABILITY:-}" = syncfs ] || [ "$(pgr_fstype "$1")" = xfs ]; then fsync=(); fi
  PGR_FILES=0 PGR_BYTES=0
  if ! find "$@" \( -type f -o -type d \) -printf '%y %s\n' "\${fsync[@]}" >"$PGR_WORK/walk" 2>"$PGR_WORK/walk.err"; then
    pgr_fail "could not make the clone durable (fsync of its files): $(head -n 1 "$PGR_WORK/walk.err")"
  fi
  while read -r kind size; do
    if [ "$kind" = f ]; then PGR_FILES=$((PGR_FILES + 1)) PGR_BYTES=$((PGR_BYTES + size)); fi
  done <"$PGR_WORK/walk"
  if [ "\${PGR_DURABILITY:-}" = syncfs ]; then
    sync -f "$1"
  elif ((\${#PGR_WRITTEN[@]} > 0)); then
    sync -- "\${PGR_WRITTEN[@]}" || pgr_fail "could not make the clone durable (fsync of \${PGR_WRITTEN[*]})"
  fi
}

# The marker goes last and durably: its fsync, then the volume directory's, which holds the
# marker's and the result's new names (renamed in before). Only then is success reported.
pgr_publish_marker() { # json
  printf '%s\n' "$1" >"$PGR_STAGE/result.json"
  chmod 0644 "$PGR_STAGE/result.json"
  pgr_chown "$PGR_STAGE/result.json"
  if [ "\${PGR_DURABILITY:-}" != syncfs ]; then sync -- "$PGR_STAGE/result.json"; fi
  mv -T "$PGR_STAGE/result.json" "$PGR_VOLUME_DIR/${POPULATED_MARKER}"
  if [ "\${PGR_DURABILITY:-}" = syncfs ]; then sync -f "$PGR_VOLUME_DIR"; else sync -- "$PGR_VOLUME_DIR"; fi
  printf '%s\n' "$1" >&4
}

pgr_rename_into_place() { # staged-path final-path
  if [ -e "$2" ] || [ -L "$2" ]; then pgr_fail "$2 already exists; a clone never overwrites"; fi
  mv -n -T "$1" "$2" || true
  if [ -e "$1" ]; then pgr_fail "$2 appeared during the population; a clone never overwrites"; fi
}

pgr_psql_failure() { # psql's exit status
  local err who vnum grant
  if [ -s "$PGR_WORK/reason" ]; then pgr_fail "$(cat "$PGR_WORK/reason")"; fi
  if grep -qE 'permission denied for function pg_(backup_start|backup_stop|start_backup|stop_backup)' "$PGR_WORK/psql.err"; then
    who=$(sed -n 's/^who=//p' "$PGR_WORK/info.env")
    vnum=$(sed -n 's/^server_version_num=//p' "$PGR_WORK/info.env")
    if [ "\${vnum:-150000}" -ge 150000 ]; then
      grant="GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO \${who:-streaming_replica};"
    else
      grant="GRANT EXECUTE ON FUNCTION pg_start_backup(text, boolean, boolean), pg_stop_backup(boolean, boolean) TO \${who:-streaming_replica};"
    fi
    pgr_fail "permission denied: role \${who:-?} may not run the backup functions; as a superuser, run once on the primary: $grant"
  fi
  err=$(grep -v '^CONTEXT:' "$PGR_WORK/psql.err" | sed -E 's/^psql:[^:]*:[0-9]+: //' || true)
  if [ -z "$err" ] && [ "$1" -gt 128 ]; then
    err="psql was killed by signal $(($1 - 128)); the server aborts the backup and drops the temporary slot"
  fi
  err=\${err#psql: }
  pgr_fail "psql: \${err:-exited with status $1 without a message}"
}

pgr_write_session() {
  cat >"$PGR_WORK/session.sql" <<'SQL'
\set QUIET on
\pset tuples_only on
\pset format unaligned
SET client_min_messages = warning;
SET statement_timeout = 0;
-- The server ends this session (and with it the backup and the slot) within a minute of a dead peer.
${serverKeepalives()}
SELECT current_setting('server_version_num')::int AS server_version_num,
       current_setting('server_version_num')::int >= 130000 AS supported,
       current_setting('server_version_num')::int >= 140000 AS pg14,
       current_setting('server_version_num')::int >= 150000 AS pg15,
       pg_catalog.pg_is_in_recovery() AS standby,
       pg_catalog.quote_ident(current_user) AS who,
       (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size') AS wal_segment_size \gset
\o info.env
\qecho server_version_num=:server_version_num
\qecho standby=:standby
\qecho who=:who
\o
\if :supported
\else
DO $$BEGIN RAISE EXCEPTION 'PostgreSQL % is not supported (13 or later)', current_setting('server_version'); END$$;
\endif
\if :pg14
SET idle_session_timeout = 0;
\endif
-- Tablespaces a clone cannot copy refuse it before any backup starts.
\o tablespace-names
SELECT oid::text || ' ' || regexp_replace(spcname, '[^[:alnum:]_.-]', '?', 'g')
  FROM pg_catalog.pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global');
\o
\set ok \`bash "$PGR_STEPS" tablespaces && echo on || echo off\`
\if :ok
\else
DO $$BEGIN RAISE EXCEPTION 'pg-reflinker: the source has tablespaces a clone cannot copy'; END$$;
\endif
-- Created before the backup starts, so that no WAL it needs can be recycled; dropped with the session.
SELECT slot_name AS slot_created FROM pg_catalog.pg_create_physical_replication_slot(:'slot', true, true) \gset
\set t_start \`date +%s%N\`
\if :pg15
SELECT pg_catalog.pg_backup_start(:'label', true) AS start_lsn \gset
\else
SELECT pg_catalog.pg_start_backup(:'label', true, false) AS start_lsn \gset
\endif
\set t_started \`date +%s%N\`
-- A shell escape's failure is invisible to ON_ERROR_STOP: test its result, fail with an SQL error.
\set ok \`bash "$PGR_STEPS" copy-tree && echo on || echo off\`
\if :ok
\else
DO $$BEGIN RAISE EXCEPTION 'pg-reflinker: the copy failed'; END$$;
\endif
\if :pg15
SELECT lsn AS stop_lsn, coalesce(labelfile, '') AS labelfile, coalesce(spcmapfile, '') AS spcmap
  FROM pg_catalog.pg_backup_stop(false) \gset
\else
SELECT lsn AS stop_lsn, coalesce(labelfile, '') AS labelfile, coalesce(spcmapfile, '') AS spcmap
  FROM pg_catalog.pg_stop_backup(false, false) \gset
\endif
SELECT :'spcmap' <> '' AS has_spcmap,
       (SELECT coalesce(string_agg(m[1], ' '), '') FROM regexp_matches(:'spcmap', '^([0-9]+) ', 'gn') AS m) AS spc_oids,
       (SELECT coalesce(string_agg(oid::text, ' ' ORDER BY oid), '') FROM pg_catalog.pg_tablespace
         WHERE spcname NOT IN ('pg_default', 'pg_global')) AS spc_after,
       coalesce(substring(:'labelfile' from 'START TIMELINE: ([0-9]+)'), '0') AS timeline \gset
\setenv PGR_START_LSN :start_lsn
\setenv PGR_STOP_LSN :stop_lsn
\setenv PGR_TIMELINE :timeline
\setenv PGR_WAL_SEGSIZE :wal_segment_size
\set ok \`bash "$PGR_STEPS" wal && echo on || echo off\`
\if :ok
\else
DO $$BEGIN RAISE EXCEPTION 'pg-reflinker: the WAL copy failed'; END$$;
\endif
-- Byte-exact: qecho -n adds nothing (a SELECT would append a newline). No tablespace_map: the
-- clone's tablespace links already lead to its own copies (PostgreSQL would recreate the source's).
\o backup_label
\qecho -n :labelfile
\o
\o session.env
\qecho has_spcmap=:has_spcmap
\qecho spc_oids=:spc_oids
\qecho spc_after=:spc_after
\qecho start_lsn=:start_lsn
\qecho stop_lsn=:stop_lsn
\qecho timeline=:timeline
\qecho t_start=:t_start
\qecho t_started=:t_started
\qecho done=1
\o
SQL
}

pgr_online() {
  local src=$PGR_SOURCE_PGDATA p=$PGR_STAGE/pgdata slot rc=0 start_lsn stop_lsn timeline t_start t_started from rel
  if [ "$(stat -c %u "$src")" != "$PGR_UID" ]; then
    pgr_fail "source PGDATA $src is owned by uid $(stat -c %u "$src"), not PGR_UID=$PGR_UID"
  fi
  pgr_probe_reflink "$src/PG_VERSION" "$PGR_STAGE"
  mkdir "$p"
  slot=${SLOT_PREFIX}$(printf '%s' "$PGR_LABEL" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_' | cut -c1-40)_$$
  pgr_write_session
  pgr_write_steps
  cd "$PGR_WORK"
  PGAPPNAME=pg-reflinker-populator PGCONNECT_TIMEOUT=\${PGCONNECT_TIMEOUT:-30} \
    psql -X -q -w -v ON_ERROR_STOP=1 -v label="$PGR_LABEL" -v slot="$slot" -d "$PGR_CONNINFO" -f session.sql \
    >psql.out 2>psql.err 3>&- 4>&- &
  PGR_PSQL_PID=$!
  wait "$PGR_PSQL_PID" || rc=$?
  PGR_PSQL_PID=
  cat psql.err >&2
  if [ "$rc" -ne 0 ]; then pgr_psql_failure "$rc"; fi
  # Read in this process (no sed per value): the values are only compared and checked below.
  local -A session=()
  local line
  if [ -f session.env ]; then
    while IFS= read -r line; do if [[ $line == *=* ]]; then session[\${line%%=*}]=\${line#*=}; fi; done <session.env
  fi
  if [ "\${session[done]:-}" != 1 ]; then pgr_fail "the psql session ended early without an error"; fi
  start_lsn=\${session[start_lsn]:-} stop_lsn=\${session[stop_lsn]:-} timeline=\${session[timeline]:-}
  t_start=\${session[t_start]:-} t_started=\${session[t_started]:-}
  from=$(sed -n 's/^BACKUP FROM: //p' backup_label)
  pgr_check_lsn "start LSN" "$start_lsn"
  pgr_check_lsn "stop LSN" "$stop_lsn"
  pgr_check_number timeline "$timeline"
  if ! [[ $from =~ ^(primary|standby)$ ]]; then pgr_fail "the server returned a malformed backup label (BACKUP FROM: '$from')"; fi
  if ! [[ $t_start =~ ^[0-9]+$ && $t_started =~ ^[0-9]+$ ]]; then pgr_fail "the psql session recorded no timings"; fi
  pgr_check_tablespace_map "\${session[has_spcmap]:-}" "\${session[spc_oids]:-}"
  if [ "\${session[spc_after]:-}" != "$(cut -d ' ' -f 1 tablespace-names | sort -n | paste -s -d ' ')" ]; then
    pgr_fail "refusing to publish the clone: the source's tablespaces changed during the copy; nothing was published; try again"
  fi

  pgr_clean_pgdata "$p"
  mv backup_label "$p/backup_label"
  pgr_chown "$PGR_VOLUME_DIR" "$p" "$p/backup_label"
  if pgr_is_root; then chown -R "$PGR_UID:$PGR_GID" "$p/pg_wal"; fi
  chmod 0700 "$p"
  pgr_audit_links "$PGR_STAGE" work
  # Tablespaces copied from elsewhere in the source volume keep their place in the clone's volume.
  local -a tops=()
  while read -r _ _ rel; do
    if [[ $rel != pgdata/* && " \${tops[*]} " != *" \${rel%%/*} "* ]]; then tops+=("\${rel%%/*}"); fi
  done <"$PGR_WORK/tablespaces"
  # The WAL is copied with --reflink=auto (walStorage may be another filesystem): its segments may
  # hold data this script wrote, so they are fsynced like backup_label.
  PGR_WRITTEN=("$p/backup_label")
  for f in "$p"/pg_wal/*; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then PGR_WRITTEN+=("$f"); fi
  done
  pgr_durable_count "$p" "\${tops[@]/#/$PGR_STAGE/}"
  for rel in "\${tops[@]}"; do pgr_rename_into_place "$PGR_STAGE/$rel" "$PGR_VOLUME_DIR/$rel"; done
  pgr_rename_into_place "$p" "$PGR_VOLUME_DIR/pgdata"
  pgr_publish_marker "$(printf '{"mode":"online","label":"%s","startLsn":"%s","stopLsn":"%s","timeline":%d,"backupFrom":"%s","files":%d,"bytes":%d,"seconds":%s,"checkpointSeconds":%s,"copySeconds":%s,"walSeconds":%s}' \
    "$PGR_LABEL" "$start_lsn" "$stop_lsn" "$timeline" "$from" "$PGR_FILES" "$PGR_BYTES" \
    "$(pgr_secs $(($(date +%s%N) - PGR_T0)))" "$(pgr_secs $((t_started - t_start)))" \
    "$(pgr_secs "$(cat copy.ns)")" "$(pgr_secs "$(cat wal.ns)")")"
}

pgr_plain() {
  local src=$PGR_SOURCE_DIR v=$PGR_STAGE/volume e t0 copy_ns pid
  pgr_probe_reflink "$src" "$PGR_STAGE"
  mkdir "$v"
  pgr_enter_source
  # A plain copy is of a stopped database only: a postmaster.pid may name a running server, which
  # only the caller can rule out (or the StorageClass's consent to a crash-consistent copy waives).
  if [ -e pgdata/postmaster.pid ] || [ -L pgdata/postmaster.pid ]; then
    if [ "\${PGR_SERVER_STOPPED:-}" != verified ] && [ "\${PGR_CRASH_CONSISTENT:-}" != 1 ]; then
      pid=$(timeout 5 head -c 20 pgdata/postmaster.pid 2>/dev/null | head -n 1 | tr -cd '0-9' || true)
      pgr_fail "refusing a plain copy: pgdata/postmaster.pid in the source volume names a server (pid \${pid:-?}) that may still be running, so a copy could be inconsistent; stop the server cleanly (a clean shutdown removes postmaster.pid) or clone it while it runs"
    fi
  fi
  if [ -d pgdata ] || [ -L pgdata ]; then pgr_check_tablespaces pgdata "$PGR_SOURCE_PINNED"; else : >"$PGR_WORK/tablespaces"; fi
  t0=$(date +%s%N)
  # Files vanish from a volume nobody uses only when someone deletes them: that copy is no copy.
  if [ "\${PGR_CRASH_CONSISTENT:-}" = 1 ]; then pgr_cp tolerant -a --reflink=always ./. "$v/"; else pgr_cp strict -a --reflink=always ./. "$v/"; fi
  copy_ns=$(($(date +%s%N) - t0))
  rm -rf -- "$v/${STAGING_DIR}" "$v/${POPULATED_MARKER}" "$v/pgdata/postmaster.pid" "$v/pgdata/postmaster.opts"
  pgr_relink_tablespaces pgdata "$v/pgdata" "$v" link
  cd /
  pgr_audit_links "$v"
  pgr_chown "$PGR_VOLUME_DIR"
  PGR_WRITTEN=()
  pgr_durable_count "$v"
  for e in "$v"/*; do
    if [ "\${e##*/}" != pgdata ]; then pgr_rename_into_place "$e" "$PGR_VOLUME_DIR/\${e##*/}"; fi
  done
  # pgdata last: its presence means the rest is there.
  if [ -e "$v/pgdata" ]; then pgr_rename_into_place "$v/pgdata" "$PGR_VOLUME_DIR/pgdata"; fi
  pgr_publish_marker "$(printf '{"mode":"plain","label":"%s","startLsn":null,"stopLsn":null,"timeline":null,"backupFrom":null,"files":%d,"bytes":%d,"seconds":%s,"checkpointSeconds":0,"copySeconds":%s,"walSeconds":0}' \
    "$PGR_LABEL" "$PGR_FILES" "$PGR_BYTES" "$(pgr_secs $(($(date +%s%N) - PGR_T0)))" "$(pgr_secs "$copy_ns")")"
}

pgr_main() {
  local e
  exec 3>&2 4>&1
  PGR_MODE=\${PGR_MODE:-online} PGR_UID=\${PGR_UID:-26} PGR_GID=\${PGR_GID:-26} PGR_WORK_DIR=\${PGR_WORK_DIR:-}
  PGR_VOLUME_DIR=\${PGR_VOLUME_DIR:-} PGR_LABEL=\${PGR_LABEL:-}
  export PGR_MODE PGR_UID PGR_GID PGR_VOLUME_DIR PGR_LABEL PGR_WORK_DIR
  case $PGR_MODE in online | plain) ;; *) pgr_fail "PGR_MODE must be online or plain, not '$PGR_MODE'" ;; esac
  if ! [[ $PGR_LABEL =~ ${LABEL_PATTERN.source} ]]; then pgr_fail "PGR_LABEL '$PGR_LABEL' is not a valid label"; fi
  if ! [[ $PGR_UID =~ ^[0-9]+$ && $PGR_GID =~ ^[0-9]+$ ]]; then pgr_fail "PGR_UID and PGR_GID must be numbers"; fi
  if [ -z "$PGR_VOLUME_DIR" ] || [ ! -d "$PGR_VOLUME_DIR" ]; then pgr_fail "destination volume directory '$PGR_VOLUME_DIR' does not exist"; fi
  if [ "$PGR_MODE" = online ]; then
    if [ -z "\${PGR_CONNINFO:-}" ]; then pgr_fail "PGR_CONNINFO is not set"; fi
    if [ ! -f "\${PGR_SOURCE_PGDATA:-}/PG_VERSION" ]; then pgr_fail "source PGDATA '\${PGR_SOURCE_PGDATA:-}' does not exist or is not a data directory"; fi
    export PGR_CONNINFO PGR_SOURCE_PGDATA
  elif [ -z "\${PGR_SOURCE_DIR:-}" ] || [ ! -d "$PGR_SOURCE_DIR" ]; then
    pgr_fail "source volume directory '\${PGR_SOURCE_DIR:-}' does not exist"
  fi
  if [ -n "\${PGR_SOURCE_ID:-}" ] && ! [[ $PGR_SOURCE_ID =~ ^[0-9]+:[0-9]+$ ]]; then pgr_fail "PGR_SOURCE_ID must be <device>:<inode>"; fi
  if [ "$PGR_MODE" = online ]; then pgr_pin_source "$PGR_SOURCE_PGDATA"; else pgr_pin_source "$PGR_SOURCE_DIR"; fi
  if ! pgr_is_root && [ "$(id -u)" != "$PGR_UID" ]; then
    pgr_fail "running as uid $(id -u), which can produce files owned by uid $PGR_UID only as root"
  fi
  # One population of a volume at a time: the lock on its directory is held by every process of
  # this run (children inherit it), so a second run cannot start while any of them still writes.
  exec 9<"$PGR_VOLUME_DIR"
  if ! flock -n 9; then pgr_fail "another population of $PGR_VOLUME_DIR is still running; refusing to start a second"; fi
  # Already done (a retried Job, a second call): report the recorded result.
  if [ -f "$PGR_VOLUME_DIR/${POPULATED_MARKER}" ]; then
    if grep -qF "\"label\":\"$PGR_LABEL\"" "$PGR_VOLUME_DIR/${POPULATED_MARKER}"; then
      cat "$PGR_VOLUME_DIR/${POPULATED_MARKER}" >&4
      exit 0
    fi
    pgr_fail "$PGR_VOLUME_DIR is already populated under another label"
  fi
  if [ "$PGR_MODE" = online ] && [ -e "$PGR_VOLUME_DIR/pgdata" ]; then
    pgr_fail "$PGR_VOLUME_DIR/pgdata already exists; a clone never overwrites"
  fi
  if [ "$PGR_MODE" = plain ]; then
    for e in "$PGR_VOLUME_DIR"/*; do
      if [ "\${e##*/}" != ${STAGING_DIR} ]; then pgr_fail "destination volume $PGR_VOLUME_DIR is not empty (\${e##*/})"; fi
    done
  fi

  PGR_STAGE=$PGR_VOLUME_DIR/${STAGING_DIR}
  trap pgr_cleanup EXIT
  trap 'PGR_LAST_ERR="line $LINENO: $BASH_COMMAND"' ERR
  trap 'pgr_fail "interrupted by SIGTERM"' TERM
  trap 'pgr_fail "interrupted by SIGINT"' INT
  trap 'pgr_fail "interrupted by SIGHUP"' HUP
  # Leftovers of an interrupted run (one populator per volume at a time: its process is gone).
  rm -rf -- "$PGR_STAGE"
  mkdir "$PGR_STAGE"
  if [ -n "$PGR_WORK_DIR" ]; then
    PGR_OWN_WORK=$(mktemp -d "$PGR_WORK_DIR/${WORK_DIR_PREFIX}XXXXXX")
    PGR_WORK=$PGR_OWN_WORK
  else
    PGR_WORK=$PGR_STAGE/work
    mkdir "$PGR_WORK"
  fi
  export PGR_STAGE PGR_WORK
  exec >>"$PGR_WORK/log" 2>&1
  echo "pg-reflinker populate: mode=$PGR_MODE label=$PGR_LABEL volume=$PGR_VOLUME_DIR"
  if [ "$PGR_MODE" = online ]; then pgr_online; else pgr_plain; fi
}

pgr_main "$@"
`;
