#!/bin/bash
# fetch_adbd.sh CACHE_DIR
#
# Debian's `adbd` (the device side of adb) from <codename>-backports, with the runtime
# libraries this machine lacks, unpacked under CACHE_DIR by the project's one Debian fetch
# script (pytest_aiotbench/runner/native/fetch_debian_package.sh says how). Writes
# CACHE_DIR/adbd.env with ADBD_BIN and ADBD_LD_LIBRARY_PATH.
# Env override: ADBD_PACKAGE (default: adbd).
set -euo pipefail
exec bash "$(dirname "$0")/../../pytest_aiotbench/runner/native/fetch_debian_package.sh" \
  "${1:?usage: $0 CACHE_DIR}" adbd "${ADBD_PACKAGE:-adbd}" --suite backports \
  --binary usr/lib/android-sdk/platform-tools/adbd --lib-dirs "usr/lib/@MA@/android"
