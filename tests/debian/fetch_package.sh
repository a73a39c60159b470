#!/bin/bash
# fetch_package.sh CACHE_DIR NAME PACKAGE BINARY [EXTRA_LIB_DIRS] [backports]
#
# Download a Debian PACKAGE (from <codename>-backports when the last argument
# is `backports`) plus whatever runtime libraries it needs that this machine
# lacks, and unpack them with `dpkg -x` under CACHE_DIR/root.  The test set-up
# uses it for adbd (tests/adbd/fetch_adbd.sh) and headless Chromium
# (tests/debian/fetch_chromium.sh).
# Nothing is installed: the system's apt/dpkg state is only *read*
# (/var/lib/dpkg/status to know what is already installed, the keyrings named
# by the system's own sources to verify the archive).  All apt state (sources,
# lists, cache, preferences) lives under CACHE_DIR/apt.
#
# The mirror is taken from the machine's own sources (/etc/apt/sources.list and
# /etc/apt/sources.list.d/*.list|*.sources): every `deb` entry for suite
# <codename> is copied with <codename>-backports added.  No host name is
# written here.
#
# BINARY is the executable's path inside the package (e.g. usr/bin/tool);
# EXTRA_LIB_DIRS a colon list of further library folders inside it, where
# @MA@ stands for the multiarch triplet.  The binary's own folder is always
# searched (Chromium keeps its libraries beside it).
#
# On success it writes CACHE_DIR/NAME.env (sourceable; NAME upper-cased):
#   NAME_BIN=...                 the executable
#   NAME_LD_LIBRARY_PATH=...     what to put in LD_LIBRARY_PATH when running it
# Idempotent: when the package is already unpacked and all the binary's
# libraries resolve, it exits at once without touching the network.
#
# Env override: DEB_CODENAME (default: VERSION_CODENAME of /etc/os-release).
set -euo pipefail

USAGE="usage: $0 CACHE_DIR NAME PACKAGE BINARY [EXTRA_LIB_DIRS] [backports]"
CACHE=${1:?$USAGE}
NAME=${2:?$USAGE}
PKG=${3:?$USAGE}
BINARY=${4:?$USAGE}
EXTRA_LIB_DIRS=${5:-}
FROM_BACKPORTS=${6:-}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
ROOT=$CACHE/root          # dpkg -x target
DEBS=$CACHE/debs          # downloaded .deb files
APTD=$CACHE/apt           # private apt configuration + state
STAMPS=$CACHE/unpacked    # one stamp per unpacked .deb
VAR=$(tr '[:lower:]-' '[:upper:]_' <<<"$NAME")

log() { echo "fetch $NAME: $*" >&2; }

# One run at a time per cache folder.
exec 9>"$CACHE/.lock"
flock 9

multiarch() {
  dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null || echo "$(uname -m)-linux-gnu"
}
MA=$(multiarch)
BIN=$ROOT/$BINARY
LIBPATH=$(dirname "$BIN"):$ROOT/usr/lib/$MA:$ROOT/lib/$MA
IFS=: read -ra EXTRA <<<"$EXTRA_LIB_DIRS"
for dir in "${EXTRA[@]}"; do
  LIBPATH=$ROOT/${dir//@MA@/$MA}:$LIBPATH
done

write_env() {
  cat >"$CACHE/$NAME.env" <<EOF
${VAR}_BIN=$BIN
${VAR}_LD_LIBRARY_PATH=$LIBPATH
EOF
}

complete() {
  [ -x "$BIN" ] || return 1
  local out
  out=$(LD_LIBRARY_PATH=$LIBPATH ldd "$BIN" 2>&1) || return 1
  ! grep -q "not found" <<<"$out"
}

if complete; then
  write_env
  log "already unpacked in $ROOT (all libraries resolve); nothing to do"
  exit 0
fi

# ---------------------------------------------------------------- apt config
CODENAME=${DEB_CODENAME:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$CODENAME" ] || { log "cannot determine the Debian codename"; exit 1; }
BPO=$CODENAME-backports

mkdir -p "$APTD/sources.list.d" "$APTD/preferences.d" \
         "$APTD/state/lists/partial" "$APTD/cache/archives/partial" "$DEBS" "$ROOT" "$STAMPS"
: >"$APTD/preferences"

# One-line style sources: keep `deb` lines whose suite is $CODENAME, add a
# copy with the backports suite.
{
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v c="$CODENAME" -v b="$BPO" '
      /^[[:space:]]*deb[[:space:]]/ {
        # fields: deb [opts] uri suite comp...
        i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i+1) == c) { print; line = $0; sub("[[:space:]]" c "([[:space:]]|$)", " " b " ", line); print line }
      }' "$f"
  done
} >"$APTD/sources.list"

# deb822 style sources: for each enabled stanza of Types deb whose Suites
# contain $CODENAME, emit it with Suites: $CODENAME $BPO.
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  awk -v c="$CODENAME" -v b="$BPO" '
    function flush(   k, ok, n, s, i) {
      if (nkeys == 0) return
      ok = (tolower(val["enabled"]) != "no") && (" " val["types"] " " ~ / deb /)
      n = split(val["suites"], s, /[[:space:]]+/); has = 0
      for (i = 1; i <= n; i++) if (s[i] == c) has = 1
      if (ok && has) {
        for (i = 1; i <= nkeys; i++) {
          k = keys[i]
          if (k == "suites") print orig[k] ": " c " " b
          else if (k == "types") print orig[k] ": deb"
          else print orig[k] ": " val[k]
        }
        print ""
      }
      delete val; delete orig; nkeys = 0
    }
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*$/ { flush(); next }
    /^[[:space:]]/ { if (last != "") val[last] = val[last] "\n" $0; next }   # continuation (Signed-By blocks)
    {
      p = index($0, ":"); k = substr($0, 1, p - 1); v = substr($0, p + 1)
      sub(/^[[:space:]]+/, "", v); sub(/[[:space:]]+$/, "", v)
      lk = tolower(k); if (!(lk in val)) keys[++nkeys] = lk
      orig[lk] = k; val[lk] = v; last = lk
    }
    END { flush() }' "$f"
done >"$APTD/sources.list.d/private.sources"

if ! [ -s "$APTD/sources.list" ] && ! [ -s "$APTD/sources.list.d/private.sources" ]; then
  log "no deb entry for suite $CODENAME in the system sources"; exit 1
fi

# Read after the system's apt.conf.d (-c), so it can drop the system hooks
# (e.g. appstream refresh after update) that would touch system state.
cat >"$APTD/apt.conf" <<EOF
Dir::Etc::sourcelist "$APTD/sources.list";
Dir::Etc::sourceparts "$APTD/sources.list.d";
Dir::Etc::preferences "$APTD/preferences";
Dir::Etc::preferencesparts "$APTD/preferences.d";
Dir::State "$APTD/state";
Dir::State::lists "$APTD/state/lists";
Dir::State::extended_states "$APTD/state/extended_states";
Dir::Cache "$APTD/cache";
Dir::Cache::archives "$APTD/cache/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
Acquire::Languages "none";
#clear APT::Update::Post-Invoke-Success;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Pre-Invoke;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
#clear DPkg::Pre-Install-Pkgs;
EOF
APT=(-c "$APTD/apt.conf" -q)

t0=$(date +%s.%N)
log "apt-get update (private lists: $CODENAME + $BPO)"
apt-get "${APT[@]}" update >"$APTD/update.log" 2>&1 || { cat "$APTD/update.log" >&2; exit 1; }

# Resolve exactly what is missing on this machine: simulate an install of
# the package against the system dpkg status (read only).
log "resolving dependencies"
TARGET=()
[ "$FROM_BACKPORTS" = backports ] && TARGET=(-t "$BPO")
sim=$(apt-get "${APT[@]}" -s install --no-install-recommends "${TARGET[@]}" "$PKG" 2>&1) || { echo "$sim" >&2; exit 1; }
# "Inst name [old] (new suite [arch])" -> name=new
mapfile -t WANT < <(awk '/^Inst /{ v = ($3 ~ /^\[/) ? $4 : $3; sub(/^\(/, "", v); print $2 "=" v }' <<<"$sim")
# The package itself is always needed (even if some version is installed system-wide).
if ! printf '%s\n' "${WANT[@]}" | grep -q "^$PKG="; then
  if [ "$FROM_BACKPORTS" = backports ]; then WANT+=("$PKG/$BPO"); else WANT+=("$PKG"); fi
fi
log "packages: ${WANT[*]}"
printf '%s\n' "${WANT[@]}" >"$CACHE/packages.txt"

cd "$DEBS"
need=()
for p in "${WANT[@]}"; do
  n=${p%%[=/]*}
  ls "$DEBS/${n}_"*.deb >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get download ${need[*]}"
  apt-get "${APT[@]}" download "${need[@]}" >"$APTD/download.log" 2>&1 || { cat "$APTD/download.log" >&2; exit 1; }
fi

for deb in "$DEBS"/*.deb; do
  s=$STAMPS/$(basename "$deb").done
  [ -e "$s" ] && continue
  dpkg -x "$deb" "$ROOT"
  touch "$s"
done

if ! complete; then
  log "$BINARY still has unresolved libraries:"
  LD_LIBRARY_PATH=$LIBPATH ldd "$BIN" | grep "not found" >&2 || true
  exit 1
fi
write_env
log "done in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s: $BIN"
