#!/bin/bash
# fetch_debian_package.sh CACHE_DIR NAME PACKAGE [--suite SUITE]... [--binary PATH]
#                         [--lib-dirs DIRS] [--find FILE] [--arch ARCH] [--with PACKAGE]...
#
# The one way this project gets a Debian package without installing it: download PACKAGE
# with a private apt configuration and unpack it with `dpkg -x` under CACHE_DIR/root. Used by
# the native runner's builder (the ONNX Runtime C API header from libonnxruntime-dev) and by
# the tests (adbd, headless Chromium: tests/adbd/fetch_adbd.sh, tests/debian/fetch_chromium.sh;
# the emulated arm64 board's root folder and qemu: tests/boards/arm64-board).
#
#   --suite SUITE    take PACKAGE from SUITE; given several times, the first suite that has it.
#                    `backports` means <codename>-backports. Default: the machine's codename.
#   --binary PATH    the executable inside the package (e.g. usr/bin/tool): also fetch the
#                    runtime libraries it needs that this machine lacks (resolved against the
#                    system's dpkg status, from the machine's release and SUITE), and check
#                    with ldd that every library resolves. Without it only PACKAGE is fetched.
#   --lib-dirs DIRS  a colon list of further library folders inside the package, where @MA@
#                    stands for the multiarch triplet (the binary's own folder is always
#                    searched: Chromium keeps its libraries beside it).
#   --find FILE      print, as the last line on stdout, the folder holding FILE.
#   --arch ARCH      another architecture's packages (e.g. arm64), for a root folder of their
#                    own: apt runs with APT::Architecture ARCH (no `dpkg --add-architecture`)
#                    against an empty dpkg status, so --binary fetches the binary's whole
#                    dependency closure; ldd cannot run it, so the check is that every library
#                    it names (DT_NEEDED, read with readelf where there is one) is unpacked in
#                    its library folders. Default: this machine's architecture.
#   --with PACKAGE   also unpack PACKAGE into the same root (with --binary, its dependencies
#                    too), from the suites apt sees; may be given several times.
#
# Writes CACHE_DIR/NAME.env (sourceable; NAME upper-cased, '-' as '_'): NAME_ROOT, and with
# --binary NAME_BIN and NAME_LD_LIBRARY_PATH (what to put in LD_LIBRARY_PATH to run it).
#
# Nothing is installed: the system's apt/dpkg state is only read (/var/lib/dpkg/status, the
# keyrings its sources name). The mirror comes from the machine's own sources
# (/etc/apt/sources.list, sources.list.d/*.list and *.sources): every `deb` entry of suite
# <codename> is copied with the wanted suites; no host name is written here. All apt state
# lives under CACHE_DIR/apt. Logs go to stderr. Idempotent: when the package is unpacked (and
# the binary's libraries resolve, and FILE is there) it exits at once, offline.
#
# Env override: DEB_CODENAME (default: VERSION_CODENAME of /etc/os-release).
set -euo pipefail

USAGE="usage: $0 CACHE_DIR NAME PACKAGE [--suite SUITE]... [--binary PATH] [--lib-dirs DIRS] [--find FILE] [--arch ARCH] [--with PACKAGE]..."
CACHE=${1:?$USAGE}
NAME=${2:?$USAGE}
PKG=${3:?$USAGE}
shift 3
SUITES=()
BINARY=""
EXTRA_LIB_DIRS=""
FIND=""
ARCH=""
WITH=()
while [ $# -gt 0 ]; do
  case $1 in
    --suite) SUITES+=("${2:?$USAGE}"); shift 2 ;;
    --binary) BINARY=${2:?$USAGE}; shift 2 ;;
    --lib-dirs) EXTRA_LIB_DIRS=${2:?$USAGE}; shift 2 ;;
    --find) FIND=${2:?$USAGE}; shift 2 ;;
    --arch) ARCH=${2:?$USAGE}; shift 2 ;;
    --with) WITH+=("${2:?$USAGE}"); shift 2 ;;
    *) echo "$USAGE" >&2; exit 2 ;;
  esac
done

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
ROOT=$CACHE/root          # dpkg -x target
DEBS=$CACHE/debs          # downloaded .deb files
APTD=$CACHE/apt           # private apt configuration + state
STAMPS=$CACHE/unpacked    # one stamp per unpacked .deb
VAR=$(tr '[:lower:]-' '[:upper:]_' <<<"$NAME")

log() { echo "fetch $NAME: $*" >&2; }

exec 9>"$CACHE/.lock"   # one run at a time per cache folder
flock 9

HOST_ARCH=$(dpkg --print-architecture)
FOREIGN=""
[ -z "$ARCH" ] || [ "$ARCH" = "$HOST_ARCH" ] || FOREIGN=1
if [ -n "$FOREIGN" ]; then
  MA=$(dpkg-architecture -a "$ARCH" -qDEB_HOST_MULTIARCH 2>/dev/null) ||
    case $ARCH in  # without dpkg-dev
      arm64) MA=aarch64-linux-gnu ;;
      armhf) MA=arm-linux-gnueabihf ;;
      *) log "no multiarch triplet for $ARCH (install dpkg-dev)"; exit 1 ;;
    esac
else
  MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -dumpmachine 2>/dev/null ||
       echo "$(uname -m)-linux-gnu")
fi
BIN=${BINARY:+$ROOT/$BINARY}
LIBPATH=""
if [ -n "$BINARY" ]; then
  LIBPATH=$(dirname "$BIN"):$ROOT/usr/lib/$MA:$ROOT/lib/$MA
  IFS=: read -ra EXTRA <<<"$EXTRA_LIB_DIRS"
  for dir in "${EXTRA[@]}"; do
    LIBPATH=$ROOT/${dir//@MA@/$MA}:$LIBPATH
  done
fi

# unpacked [PACKAGE...]: PACKAGE and the --with packages (names, or name=version lines).
unpacked() {
  local p
  for p in "$PKG" "${WITH[@]}" "$@"; do
    compgen -G "$STAMPS/${p%%[=/]*}_*.deb.done" >/dev/null || return 1
  done
}
# Another architecture's binary: all it was resolved to is unpacked, and each library it names
# is in its library folders (what the loader of that root will search).
foreign_libraries_resolve() {
  [ -f "$BIN" ] && [ -f "$CACHE/packages.txt" ] || return 1
  local wanted dirs lib dir found missing=""
  mapfile -t wanted <"$CACHE/packages.txt"
  unpacked "${wanted[@]}" || return 1
  command -v readelf >/dev/null || return 0
  IFS=: read -ra dirs <<<"$LIBPATH"
  for lib in $(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    found=""
    for dir in "${dirs[@]}"; do [ ! -e "$dir/$lib" ] || found=1; done
    [ -n "$found" ] || missing+=" $lib"
  done
  [ -z "$missing" ] || { log "not unpacked:$missing"; return 1; }
}
libraries_resolve() {
  [ -z "$FOREIGN" ] || { foreign_libraries_resolve; return; }
  [ -x "$BIN" ] || return 1
  local out
  out=$(LD_LIBRARY_PATH=$LIBPATH ldd "$BIN" 2>&1) || return 1
  ! grep -q "not found" <<<"$out"
}
found_dir() { [ ! -d "$ROOT" ] || find "$ROOT" -name "$FIND" -printf '%h\n' -quit; }
complete() {
  unpacked || return 1
  [ -z "$BINARY" ] || libraries_resolve || return 1
  [ -z "$FIND" ] || [ -n "$(found_dir)" ]
}
finish() {
  {
    echo "${VAR}_ROOT=$ROOT"
    if [ -n "$BINARY" ]; then
      echo "${VAR}_BIN=$BIN"
      echo "${VAR}_LD_LIBRARY_PATH=$LIBPATH"
    fi
  } >"$CACHE/$NAME.env"
  [ -z "$FIND" ] || found_dir
}

if complete; then
  log "already unpacked in $ROOT; nothing to do"
  finish
  exit 0
fi

# ---------------------------------------------------------------- apt config
CODENAME=${DEB_CODENAME:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$CODENAME" ] || { log "cannot determine the Debian codename"; exit 1; }
[ ${#SUITES[@]} -gt 0 ] || SUITES=("$CODENAME")
for i in "${!SUITES[@]}"; do
  [ "${SUITES[$i]}" != backports ] || SUITES[$i]=$CODENAME-backports
done

mkdir -p "$APTD/sources.list.d" "$APTD/preferences.d" \
         "$APTD/state/lists/partial" "$APTD/cache/archives/partial" "$DEBS" "$ROOT" "$STAMPS"
: >"$APTD/preferences"
: >"$APTD/empty-status"  # --arch: a root of its own, nothing of it installed yet

# write_sources SUITE...: every `deb` entry of the machine's sources for suite $CODENAME,
# with the given suites instead.
write_sources() {
  local suites="$*"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v c="$CODENAME" -v suites="$suites" '
      /^[[:space:]]*deb[[:space:]]/ {
        # fields: deb [opts] uri suite comp...
        i = 2
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i+1) != c) next
        n = split(suites, s, " ")
        for (k = 1; k <= n; k++) {
          line = $0; sub("[[:space:]]" c "([[:space:]]|$)", " " s[k] " ", line); print line
        }
      }' "$f"
  done >"$APTD/sources.list"
  # deb822 stanzas of Types deb whose Suites contain $CODENAME, with Suites: the wanted ones.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v c="$CODENAME" -v suites="$suites" '
      function flush(   k, ok, n, s, i, has) {
        if (nkeys == 0) return
        ok = (tolower(val["enabled"]) != "no") && (" " val["types"] " " ~ / deb /)
        n = split(val["suites"], s, /[[:space:]]+/); has = 0
        for (i = 1; i <= n; i++) if (s[i] == c) has = 1
        if (ok && has) {
          for (i = 1; i <= nkeys; i++) {
            k = keys[i]
            if (k == "suites") print orig[k] ": " suites
            else if (k == "types") print orig[k] ": deb"
            else print orig[k] ": " val[k]
          }
          print ""
        }
        delete val; delete orig; nkeys = 0
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]/ { if (last != "") val[last] = val[last] "\n" $0; next }  # continuation (Signed-By blocks)
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
}

# Read after the system's apt.conf.d (-c), so it can drop the system hooks (e.g. the appstream
# refresh after update) that would touch system state.
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
$([ -z "$FOREIGN" ] || printf '%s\n' "APT::Architecture \"$ARCH\";" \
    "APT::Architectures { \"$ARCH\"; };" "Dir::State::status \"$APTD/empty-status\";")
#clear APT::Update::Post-Invoke-Success;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Pre-Invoke;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
#clear DPkg::Pre-Install-Pkgs;
EOF
APT=(-c "$APTD/apt.conf" -q)

t0=$(date +%s.%N)
suite=""
for candidate in "${SUITES[@]}"; do
  # With --binary, the machine's own release is there too: the dependencies come from it.
  if [ -n "$BINARY" ] && [ "$candidate" != "$CODENAME" ]; then
    write_sources "$CODENAME" "$candidate"
  else
    write_sources "$candidate"
  fi
  log "apt-get update (private lists for $candidate)"
  apt-get "${APT[@]}" update >"$APTD/update.log" 2>&1 || { cat "$APTD/update.log" >&2; exit 1; }
  if apt-cache "${APT[@]}" madison "$PKG" 2>/dev/null | grep -q "[[:space:]]$candidate/"; then
    suite=$candidate
    break
  fi
  log "$candidate has no $PKG"
done
[ -n "$suite" ] || { log "none of ${SUITES[*]} has $PKG"; exit 1; }

WANT=("$PKG/$suite")
if [ -n "$BINARY" ]; then
  # Exactly what this machine lacks: simulate an install against the system dpkg status
  # (read only).
  log "resolving dependencies"
  sim=$(apt-get "${APT[@]}" -s install --no-install-recommends -t "$suite" "$PKG" \
        "${WITH[@]}" 2>&1) ||
    { echo "$sim" >&2; exit 1; }
  # "Inst name [old] (new suite [arch])" -> name=new
  mapfile -t WANT < <(awk '/^Inst /{ v = ($3 ~ /^\[/) ? $4 : $3; sub(/^\(/, "", v); print $2 "=" v }' <<<"$sim")
  # The package itself is always needed (even if some version is installed system-wide).
  printf '%s\n' "${WANT[@]}" | grep -q "^$PKG=" || WANT+=("$PKG/$suite")
  for p in "${WITH[@]}"; do
    printf '%s\n' "${WANT[@]}" | grep -q "^$p=" || WANT+=("$p")
  done
else
  WANT+=("${WITH[@]}")
fi
log "packages: ${WANT[*]}"
printf '%s\n' "${WANT[@]}" >"$CACHE/packages.txt"

need=()
for p in "${WANT[@]}"; do
  compgen -G "$DEBS/${p%%[=/]*}_*.deb" >/dev/null || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get download ${need[*]}"
  (cd "$DEBS" && apt-get "${APT[@]}" download "${need[@]}" >"$APTD/download.log" 2>&1) ||
    { cat "$APTD/download.log" >&2; exit 1; }
fi
for deb in "$DEBS"/*.deb; do
  stamp=$STAMPS/$(basename "$deb").done
  [ -e "$stamp" ] && continue
  dpkg -x "$deb" "$ROOT"
  touch "$stamp"
done
rm -rf "$APTD/state/lists"  # tens of MB of package lists, read again only by a new fetch

if [ -n "$BINARY" ] && ! libraries_resolve; then
  log "$BINARY still has unresolved libraries:"
  [ -n "$FOREIGN" ] || LD_LIBRARY_PATH=$LIBPATH ldd "$BIN" | grep "not found" >&2 || true
  exit 1
fi
[ -n "$BINARY" ] || unpacked || { log "not all of $PKG ${WITH[*]} unpacked"; exit 1; }
if [ -n "$FIND" ] && [ -z "$(found_dir)" ]; then
  log "$PKG has no $FIND"; exit 1
fi
log "done in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s: $PKG from $suite"
finish
