#!/bin/bash
# fetch_onnxruntime_headers.sh CACHE_DIR
#
# The onnxruntime wheel ships libonnxruntime.so but not its C API header. Debian's
# libonnxruntime-dev has it: download that one .deb (from trixie, else sid) with a
# private apt configuration and unpack it with `dpkg -x` under CACHE_DIR/root.
# Nothing is installed and no system apt state is written; the mirror and keyring come
# from the machine's own apt sources. The C API is versioned, so a header older than
# the wheel's library is fine (the runner asks for the header's ORT_API_VERSION).
#
# Logs go to stderr; the last line on stdout is the folder holding onnxruntime_c_api.h.
# Idempotent: when that header is already unpacked it exits at once, offline.
set -euo pipefail

CACHE=${1:?usage: $0 CACHE_DIR}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
ROOT=$CACHE/root
APTD=$CACHE/apt
PKG=libonnxruntime-dev

log() { echo "fetch_onnxruntime_headers: $*" >&2; }
header_dir() { [ ! -d "$ROOT" ] || find "$ROOT" -name onnxruntime_c_api.h -printf '%h\n' -quit; }

exec 9>"$CACHE/.lock"   # one run at a time per cache folder
flock 9

include=$(header_dir)
if [ -n "$include" ]; then
  log "already unpacked"
  echo "$include"
  exit 0
fi

# The Debian mirror (and its keyring) of this machine's main suite, from one-line
# (/etc/apt/sources.list*) or deb822 (*.sources) entries. Updates and security suites
# have other names, so only the plain codename matches.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || { log "cannot read VERSION_CODENAME from /etc/os-release"; exit 1; }
mirror=$(
  { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
    awk -v c="$codename" '$1 == "deb" {
      i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      if ($(i+1) == c) print $i " -"; }'
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v c="$codename" '
      function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " c " ") && uri != "")
                           print uri " " (key != "" ? key : "-");
                         types = suites = uri = key = "" }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      tolower($1) == "types:"     { $1 = ""; types = $0 }
      tolower($1) == "suites:"    { $1 = ""; suites = $0 }
      tolower($1) == "uris:"      { uri = $2 }
      tolower($1) == "signed-by:" && $2 ~ /^\// { key = $2 }
      END { flush() }' "$f"
  done | head -n 1)
[ -n "$mirror" ] || { log "no deb entry for suite $codename in /etc/apt sources"; exit 1; }
read -r uri keyring <<<"$mirror"
signed_by=""
[ "$keyring" = "-" ] || signed_by="[signed-by=$keyring] "

mkdir -p "$APTD/empty" "$APTD/state/lists/partial" "$APTD/cache/archives/partial" "$ROOT"
: >"$APTD/state/status"  # what this machine has installed must not matter
# Read after the system's own configuration (-c): point every path at private state
# (an empty dpkg status included) and drop the hooks that would touch the system.
cat >"$APTD/apt.conf" <<EOF
Dir::Etc::sourcelist "$APTD/sources.list";
Dir::Etc::sourceparts "$APTD/empty";
Dir::Etc::preferences "/dev/null";
Dir::Etc::preferencesparts "$APTD/empty";
Dir::State "$APTD/state";
Dir::State::lists "$APTD/state/lists";
Dir::State::status "$APTD/state/status";
Dir::Cache "$APTD/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
Acquire::Languages "none";
#clear APT::Update::Post-Invoke-Success;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Pre-Invoke;
EOF
apt=(-c "$APTD/apt.conf" -q)

for suite in trixie sid; do
  echo "deb ${signed_by}$uri $suite main" >"$APTD/sources.list"
  log "apt-get update ($uri $suite)"
  apt-get "${apt[@]}" update >"$APTD/update.log" 2>&1 || { cat "$APTD/update.log" >&2; exit 1; }
  version=$(apt-cache "${apt[@]}" show "$PKG" 2>/dev/null | awk '/^Version:/ { print $2; exit }' || true)
  [ -n "$version" ] && break
  log "$suite has no $PKG"
done
[ -n "$version" ] || { log "neither trixie nor sid has $PKG"; exit 1; }

log "apt-get download $PKG=$version ($suite)"
(cd "$APTD/cache/archives" && apt-get "${apt[@]}" download "$PKG=$version" >&2)
dpkg -x "$APTD/cache/archives/${PKG}_"*.deb "$ROOT"
echo "$PKG $version $suite" >"$CACHE/package.txt"
rm -rf "$APTD/state/lists"  # ~20 MB of package lists, never read again

include=$(header_dir)
[ -n "$include" ] || { log "$PKG $version has no onnxruntime_c_api.h"; exit 1; }
log "unpacked $PKG $version from $suite"
echo "$include"
