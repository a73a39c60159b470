#!/bin/bash
# fetch_chromium.sh CACHE_DIR
#
# Debian's `chromium` (headless, for the HTML report's tests), with the runtime libraries
# this machine lacks, unpacked under CACHE_DIR by the project's one Debian fetch script
# (pytest_aiotbench/runner/native/fetch_debian_package.sh says how). Writes
# CACHE_DIR/chromium.env with CHROMIUM_BIN and CHROMIUM_LD_LIBRARY_PATH.
# libpulse keeps a library in a folder of its own. Env override: CHROMIUM_PACKAGE (default:
# chromium).
set -euo pipefail
# /usr/bin/chromium is a shell wrapper that assumes a system install: run the binary itself.
exec bash "$(dirname "$0")/../../pytest_aiotbench/runner/native/fetch_debian_package.sh" \
  "${1:?usage: $0 CACHE_DIR}" chromium "${CHROMIUM_PACKAGE:-chromium}" \
  --binary usr/lib/chromium/chromium --lib-dirs "usr/lib/@MA@/pulseaudio"
