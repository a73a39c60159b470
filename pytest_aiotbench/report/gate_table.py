"""The end-of-session comparison with the baseline: per device, baseline, now, change, and
whether the change is beyond the noise; then what is new or missing."""

from __future__ import annotations

from typing import Any

from pytest_aiotbench.gate.compare import Change, GateSummary, ReleaseGate
from pytest_aiotbench.gate.pairing import PAIRED
from pytest_aiotbench.report.table import grid

HEADER = ("workload", "mode", "metric", "baseline", "now", "change", "noise", "verdict")
TEXT = ("workload", "mode", "metric", "noise", "verdict")


def render(gate: ReleaseGate, summary: GateSummary) -> list[str]:
    lines = [f"against the {gate.describe()}"]
    devices = sorted({c.key.device for c in summary.workloads}
                     | {d.device for d in summary.devices})
    for device in devices:
        rows: list[tuple[str, ...]] = []
        notes = []
        for comparison in summary.workloads:
            if comparison.key.device != device:
                continue
            for index, change in enumerate(comparison.changes):
                first = index == 0
                rows.append(_row(comparison.key.label if first else "",
                                 comparison.mode if first else "", change))
            if comparison.reason:
                said = "paired with" if comparison.mode == PAIRED else "stored figures:"
                notes.append(f"  {comparison.key.label}: {said} {comparison.reason}")
            if comparison.context:
                notes.append(f"  {comparison.key.label}: also changed: "
                             + "; ".join(comparison.context))
            if comparison.retimed_note():
                notes.append(f"  {comparison.key.label}: {comparison.retimed_note()}")
        for total in (d for d in summary.devices if d.device == device):
            for index, change in enumerate(total.changes):
                label = f"device total ({total.common} workloads in both)"
                rows.append(_row(label if index == 0 else "", "", change))
        lines += [f"device {device}", *grid(HEADER, rows, TEXT), *notes]
    for total in summary.failed_devices:
        failed = [change for change in total.changes if change.failed]
        lines += [f"REGRESSED: device {total.device}: {change.describe()} exceeds "
                  f"{change.measure.describe_limit()}" for change in failed]
    if summary.new:
        lines.append("new (not in the baseline, not gated): "
                     + ", ".join(f"{k.label} on {k.device}" for k in summary.new))
    if summary.missing:
        lines.append("missing (in the baseline, not timed this run): "
                     + ", ".join(f"{k.label} on {k.device}" for k in summary.missing))
    if summary.devices_not_run:
        lines.append("baseline devices not benchmarked this run: "
                     + ", ".join(summary.devices_not_run))
    modes = {comparison.mode for comparison in summary.workloads}
    if PAIRED in modes:
        lines.append("paired: the baseline's artifact re-timed beside this one in alternated "
                     "rounds of this session; the ratio is the median of the per-round ratios "
                     "with its interval, and a change fails when it exceeds its limit and the "
                     "interval excludes no change (inconclusive: the interval reaches beyond the "
                     "limit without that; it passes)")
    if modes - {PAIRED}:
        lines.append("stored/unchanged: the confidence intervals of both runs' medians (and "
                     "p90s); a change fails only when even the smallest change they allow "
                     "exceeds its limit")
    lines.append(f"a failing workload is re-timed {gate.confirm} time(s) and fails only if "
                 "every re-timing fails too")
    return lines


def _row(label: str, mode: str, change: Change) -> tuple[str, ...]:
    return (label, mode, change.metric.name, change.value(change.baseline),
            change.value(change.now), change.signed(change.change), change.noise(),
            change.verdict())


def to_json(gate: ReleaseGate, summary: GateSummary) -> dict[str, Any]:
    def change_json(change: Change) -> dict[str, Any]:
        return {"metric": change.metric.name, "baseline": change.baseline.to_json(),
                "now": change.now.to_json(), "change": change.change,
                "least_change": change.least, "relative": change.measure.relative,
                "beyond_noise": change.beyond_noise,
                "limit": change.measure.text or None, "failed": change.failed,
                "verdict": change.verdict(),
                "ratio": change.ratio.to_json() if change.ratio is not None else None,
                "rounds": change.rounds,
                # As the terminal table writes them (the HTML report shows these).
                "shown": {"baseline": change.value(change.baseline),
                          "now": change.value(change.now),
                          "change": change.signed(change.change), "noise": change.noise()}}

    return {
        "baseline": [{"path": str(run.path), "kind": run.kind, "created": run.created}
                     for run in gate.baseline.runs],
        "fail_on": [threshold.text for threshold in gate.thresholds.values()],
        "workloads": [{"device": c.key.device, "workload": c.key.label, "failed": c.failed,
                       "mode": c.mode, "reason": c.reason,
                       "changes": [change_json(x) for x in c.changes],
                       "also_changed": list(c.context),
                       "earlier_timings": [{"changes": [change_json(x) for x in e.changes]}
                                           for e in c.earlier]} for c in summary.workloads],
        "devices": [{"device": d.device, "common_workloads": d.common, "failed": d.failed,
                     "changes": [change_json(x) for x in d.changes]} for d in summary.devices],
        "new": [{"device": k.device, "workload": k.label} for k in summary.new],
        "missing": [{"device": k.device, "workload": k.label} for k in summary.missing],
        "devices_not_run": list(summary.devices_not_run),
    }
