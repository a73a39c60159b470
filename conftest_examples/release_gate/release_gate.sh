#!/usr/bin/env bash
# The release gate, as a CI job runs it (settings in pytest.ini).
#
#   release_gate.sh check   benchmark; gate against the accepted baseline runs, if any
#   release_gate.sh accept  make the last results an accepted baseline run, with the artifacts
#                           it timed (keeps the newest $AIOTBENCH_BASELINE_KEEP, default 3)
#
# The gate is paired: a workload whose artifact changed is timed beside the accepted run's
# own artifact, in alternated rounds of the same session, and the ratio of the two is judged,
# so the drift of a shared machine between the runs cannot fail a good change or hide a bad
# one. Where an accepted run's artifact is missing, the stored figures are judged instead, and
# the table says so.
#
# Extra pytest options go in PYTEST_ADDOPTS (for example --aiot-device=pixel8).
set -euo pipefail

baseline_dir="${AIOTBENCH_BASELINE_DIR:-.aiotbench/baseline}"
results=".aiotbench/results.json"
artifacts=".aiotbench/artifacts"  # aiot_keep_artifacts in pytest.ini
keep="${AIOTBENCH_BASELINE_KEEP:-3}"

case "${1:-check}" in
  check)
    rm -rf "$results" "$artifacts"
    if compgen -G "$baseline_dir/*.json" > /dev/null; then
      # Every accepted run: their spread is part of the noise where figures are stored.
      gate=(--aiot-baseline="$baseline_dir")
      if [[ -d "$baseline_dir/artifacts" ]]; then
        gate+=(--aiot-baseline-artifacts="$baseline_dir/artifacts")
      fi
      exec python -m pytest "${gate[@]}"
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
    stamp="$(date -u +%Y%m%dT%H%M%S%N)"
    cp "$results" "$baseline_dir/$stamp.json"
    if [[ -d "$artifacts" ]]; then
      mkdir -p "$baseline_dir/artifacts/$stamp"
      cp -R "$artifacts/." "$baseline_dir/artifacts/$stamp/"
    fi
    # The newest runs only (and their artifacts): old runs would hide a slow drift.
    ls -1 "$baseline_dir"/*.json | sort | head -n "-$keep" | while read -r old; do
      rm -f -- "$old"
      rm -rf -- "$baseline_dir/artifacts/$(basename "$old" .json)"
    done
    echo "release gate: accepted; baseline runs: $(ls -1 "$baseline_dir"/*.json | wc -l)," \
         "artifacts kept: $(find "$baseline_dir/artifacts" -type f 2>/dev/null | wc -l)"
    ;;
  *)
    echo "usage: release_gate.sh [check|accept]" >&2
    exit 2
    ;;
esac
