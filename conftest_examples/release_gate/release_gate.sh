#!/usr/bin/env bash
# The release gate, as a CI job runs it (settings in pytest.ini).
#
#   release_gate.sh check   benchmark; gate against the accepted baseline runs, if any
#   release_gate.sh accept  make the last results an accepted baseline run (keeps the newest
#                           $AIOTBENCH_BASELINE_KEEP, default 3)
#
# Extra pytest options go in PYTEST_ADDOPTS (for example --aiot-device=pixel8).
set -euo pipefail

baseline_dir="${AIOTBENCH_BASELINE_DIR:-.aiotbench/baseline}"
results=".aiotbench/results.json"
keep="${AIOTBENCH_BASELINE_KEEP:-3}"

case "${1:-check}" in
  check)
    rm -f "$results"
    if compgen -G "$baseline_dir/*.json" > /dev/null; then
      # Every accepted run: their spread is part of the noise the gate allows for.
      exec python -m pytest --aiot-baseline="$baseline_dir"
    fi
    echo "release gate: no accepted baseline in $baseline_dir yet: measuring, not gating"
    exec python -m pytest -o aiot_fail_on=
    ;;
  accept)
    if [[ ! -f "$results" ]]; then
      echo "release gate: no $results to accept; run 'release_gate.sh check' first" >&2
      exit 2
    fi
    mkdir -p "$baseline_dir"
    cp "$results" "$baseline_dir/$(date -u +%Y%m%dT%H%M%S%N).json"
    # The newest runs only: a baseline of old runs would hide a slow drift.
    ls -1 "$baseline_dir"/*.json | sort | head -n "-$keep" | xargs -r rm --
    echo "release gate: accepted; baseline runs: $(ls -1 "$baseline_dir"/*.json | wc -l)"
    ;;
  *)
    echo "usage: release_gate.sh [check|accept]" >&2
    exit 2
    ;;
esac
