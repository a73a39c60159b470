"""The HTML report: results documents (the ``--aiot-json`` format) -> one self-contained page.

The live session hands its own document here (``--aiot-html``); ``aiotbench-report`` hands
saved ones, several runs or devices side by side, merged into one ranking. Charts are
plotly's, with its JavaScript inlined once, so the page opens without network access. The
runner never imports this module: the device needs no plotting library.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.gate.thresholds import METRICS
from pytest_aiotbench.measure.flags import described, kinds, present
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.report import operators, page
from pytest_aiotbench.report.json_file import ResultsDocument
from pytest_aiotbench.report.table import DIFFERENT_WORKLOADS, common_unit, source_short
from pytest_aiotbench.runner.protocol import PeakCompute
from pytest_aiotbench.score.efficiency import FLOPS_PER_MAC, gmac_per_s, peak_share
from pytest_aiotbench.score.variants import variant_gains
from pytest_aiotbench.score.vips import DeviceScore, same_workloads, score_all, workload_vips


class ReportInputError(ValueError):
    """A document the page cannot be made from; the message names it and what was expected."""


@dataclasses.dataclass(frozen=True)
class Source:
    """One results document and where it came from (a file, or the live session)."""

    name: str
    document: ResultsDocument


@dataclasses.dataclass(frozen=True)
class DeviceRun:
    """One device's results from one source, under the name the page gives the device."""

    name: str
    source: str
    facts: DeviceFacts
    results: list[WorkloadResult]

    @property
    def peak(self) -> PeakCompute | None:
        return self.facts.peak_compute


def device_runs(sources: Iterable[Source]) -> list[DeviceRun]:
    """Every device of every source. A phone farm's files name different devices and merge
    as they are; a device that several sources name (two runs of one phone) is named with
    its source in each, so the runs stand side by side in the ranking."""
    named = Counter(alias for source in sources for alias in source.document.devices)
    runs = []
    for source in sources:
        for alias, device in source.document.devices.items():
            name = alias if named[alias] == 1 else f"{alias} ({source.name})"
            runs.append(DeviceRun(name, source.name, device.facts,
                                  [dataclasses.replace(row.result, key=dataclasses.replace(
                                      row.result.key, device=name))
                                   for row in device.workloads]))
    return runs


# ------------------------------------------------------------------------------- page
def render(sources: list[Source]) -> str:
    """The whole page as one HTML string."""
    runs = device_runs(sources)
    scores = score_all(result for run in runs for result in run.results)
    by_name = {run.name: run for run in runs}
    body = [_header(sources), _ranking(scores, by_name), _variants(runs)]
    body += [_device_section(by_name[score.device], score) for score in scores]
    every_result = [result for run in runs for result in run.results]
    body += [operators.operators_section(every_result),
             operators.delegation_section(every_result)]
    body += [_baseline(source) for source in sources if _comparison(source)]
    return page.PAGE.format(title="aiotbench report", style=page.STYLE, plotly=get_plotlyjs(),
                            body="\n".join(part for part in body if part),
                            sort_script=page.SORT_SCRIPT)


def write(path: Path, sources: list[Source]) -> None:
    """Write the page through a temporary file beside it (a reader never sees half)."""
    page.write_page(path, render(sources))


def _header(sources: list[Source]) -> str:
    rows = []
    for source in sources:
        environment, settings = source.document.environment, source.document.settings
        packages = ", ".join(f"{name} {version}" for name, version in
                             (environment.get("packages") or {}).items() if version)
        rows.append(page.row([source.name, source.document.created or "?",
                              environment.get("host", "?"), environment.get("platform", "?"),
                              environment.get("python", "?"), settings.get("protocol", "?"),
                              packages]))
    header = ["source", "created", "host", "platform", "python", "protocol", "versions"]
    return f"<h1>aiotbench report</h1><section><h2>Runs</h2>{page.table(header, rows)}</section>"


def _ranking(scores: list[DeviceScore], runs: dict[str, DeviceRun]) -> str:
    if not scores:
        return "<section><h2>Ranking</h2><p>No workload was measured.</p></section>"
    names = [score.device for score in scores]
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.18, subplot_titles=(
        "VIPS: valid images per second", "VOPS: valid MFLOPs per second"))
    for column, (values, colour) in enumerate(
            (([s.vips for s in scores], "#1f77b4"), ([s.vops for s in scores], "#ff7f0e")), 1):
        figure.add_trace(go.Bar(x=values, y=names, orientation="h", marker_color=colour,
                                text=[f"{v:.4g}" for v in values], textposition="auto",
                                showlegend=False), row=1, col=column)
        figure.update_yaxes(autorange="reversed", row=1, col=column)
    figure.update_layout(height=140 + 40 * len(scores), margin=dict(l=10, r=10, t=40, b=30))
    rows = [page.row([str(place), score.device, runs[score.device].source,
                      page.number(score.vips, "{:.2f}"), page.number(score.vops, "{:.1f}"),
                      page.number(len(score.workloads), "{}"),
                      page.number(len(score.unscored), "{}"),
                      page.number(score.flagged_vips_share, "{:.0%}")])
            for place, score in enumerate(scores, 1)]
    note = ("" if same_workloads(scores)
            else f"<p class='flag'>Note: {escape(DIFFERENT_WORKLOADS)}.</p>")
    return ("<section><h2>Ranking by VIPS</h2>" + page.chart(figure, "ranking") + note
            + page.table(["place", "device", "source", "VIPS", "VOPS", "scored", "not scored",
                          "VIPS from flagged rows"], rows, sortable=True) + "</section>")


def _variants(runs: list[DeviceRun]) -> str:
    """Speed-up against accuracy change of each quantized variant, against its fp32."""
    figure = go.Figure()
    for run in runs:
        gains = variant_gains(run.results)
        if gains:
            figure.add_trace(go.Scatter(
                x=[g.accuracy_change for g in gains], y=[g.speedup for g in gains],
                mode="markers+text", name=run.name, textposition="top center",
                text=[g.result.key.label for g in gains]))
    if not figure.data:
        return ("<section><h2>Quantized variants</h2><p>No reduced-precision variant with an "
                "fp32 partner was measured (--aiot-variant=fp32,int8 compares them).</p></section>")
    figure.add_hline(y=1, line_dash="dot")
    figure.add_vline(x=0, line_dash="dot")
    figure.update_layout(height=420, xaxis_title="accuracy change against fp32",
                         yaxis_title="speed-up over fp32 (x)",
                         margin=dict(l=10, r=10, t=30, b=40))
    return ("<section><h2>Quantized variants: speed-up against accuracy change</h2>"
            "<p>Each point: a variant against the fp32 artifact of the same network and "
            "framework on the same device.</p>" + page.chart(figure, "variants") + "</section>")


def _device_section(run: DeviceRun, score: DeviceScore) -> str:
    anchor = escape(run.name, quote=True)
    parts = [f"<section class='device' data-device='{anchor}'><h2>Device {escape(run.name)}</h2>",
             f"<p>VIPS {score.vips:.2f}, VOPS {score.vops:.1f}, from {escape(run.source)}</p>",
             _flags(run), _workload_table(run), _distributions(run), _efficiency(run),
             "<h3>Device facts and versions</h3>", _facts(run), "</section>"]
    return "\n".join(part for part in parts if part)


def _flags(run: DeviceRun) -> str:
    """The rows' flags (throttled, busy, unstable) and validity, where they occurred, and
    what each flag that occurred means."""
    flags = []
    for result in run.results:
        label = result.key.label
        flags += described(label, result.flags)
        if result.status != "passed":
            detail = (result.error or "").strip().splitlines()[:1]
            flags.append(f"{result.status}: {label}"
                         + (f" ({result.stage} stage)" if result.stage else "")
                         + (f": {detail[0][:300]}" if detail else ""))
        elif result.validity is not None and not result.validity.passed:
            flags.append(f"invalid: {label}: {result.validity.describe()}")
    if not flags:
        return ("<p class='ok'>No row flagged (throttled, busy or unstable), every measured "
                "workload valid.</p>")
    meanings = "".join(f"<li>{escape(kind.value)}: {escape(kind.meaning)}</li>"
                       for kind in present(flag for result in run.results
                                           for flag in result.flags))
    return ("<ul class='flags'>" + "".join(f"<li>{escape(flag)}</li>" for flag in flags)
            + "</ul>" + (f"<ul class='hint'>{meanings}</ul>" if meanings else ""))


WORKLOAD_COLUMNS = ["workload", "status", "runner", "threads", "median ms", "p90 ms", "±CI",
                    "n", "stop", "accuracy", "source", "VIPS", "VOPS", "GMAC/s", "% of peak",
                    "load s", "first inference ms", "peak MB after load",
                    "peak MB after timing", "others' share", "flags"]


def _workload_table(run: DeviceRun) -> str:
    peak = run.peak
    rows = []
    for r in run.results:
        stats = r.stats
        vips, vops = workload_vips(r) if r.scored else (None, None)
        share = peak_share(r, peak)
        flags = [*kinds(r.flags),
                 *([] if r.validity is None or r.validity.passed else ["outputs diverge"])]
        rows.append(page.row([
            r.key.label, r.status, r.runner_label, page.number(r.threads, "{}"),
            page.number(r.seconds_per_image * 1e3 if stats else None, "{:.3f}"),
            page.number(stats.p90_s * 1e3 if stats else None, "{:.3f}"),
            page.number(stats.median_ci_rel_half_width if stats else None, "{:.1%}"),
            page.number(len(r.samples_s), "{}"), r.stop_reason or "",
            page.number(r.accuracy, "{:.3f}"),
            source_short(r.accuracy_source),
            page.number(vips, "{:.2f}"), page.number(vops, "{:.1f}"),
            page.number(gmac_per_s(r), "{:.2f}"), page.number(share, "{:.1%}"),
            page.number(r.load_s, "{:.3f}"),
            page.number(r.first_inference_s * 1e3 if r.first_inference_s is not None else None,
                    "{:.2f}"),
            page.number(_megabytes(r.peak_rss_after_load_bytes), "{:.0f}"),
            page.number(_megabytes(r.peak_rss_after_timing_bytes), "{:.0f}"),
            page.number(r.others_share, "{:.0%}"), ", ".join(flags)]))
    basis = ("t = mean seconds per image over one end-to-end pass (the paper's protocol)"
             if any(r.latency_basis == "end-to-end" for r in run.results)
             else f"median ms = the steady-state inference median, per "
                  f"{common_unit(run.results)} (t of VIPS)")
    return ("<h3>Workloads</h3><p class='hint'>Click a column to sort. " + escape(basis)
            + "; GMAC/s = multiply-accumulates per second at that t; % of peak = its FLOP/s "
            "against the device's matrix-multiply peak at the same thread count; others' "
            "share = the share of the timed cores other processes took while it was timed.</p>"
            + page.table(WORKLOAD_COLUMNS, rows, sortable=True))


def _distributions(run: DeviceRun) -> str:
    """Each workload's latency distribution from its samples: violin, box and mean."""
    timed = [r for r in run.results if r.samples_s]
    if not timed:
        return ""
    figure = go.Figure()
    for result in timed:
        figure.add_trace(go.Violin(
            x=[seconds * 1e3 for seconds in result.samples_s], name=result.key.label,
            orientation="h", box_visible=True, meanline_visible=True, points=False,
            spanmode="hard", showlegend=False, hoveron="violins+kde"))
    figure.update_layout(height=120 + 46 * len(timed), xaxis_title="ms per inference (log)",
                         xaxis_type="log", yaxis_autorange="reversed",
                         margin=dict(l=10, r=10, t=20, b=40))
    return ("<h3>Latency distributions (every timed sample)</h3>"
            + page.chart(figure, "distribution", count=len(timed)))


def _efficiency(run: DeviceRun) -> str:
    measured = [r for r in run.results if gmac_per_s(r) is not None]
    if not measured:
        return ""
    figure = go.Figure(go.Bar(x=[r.key.label for r in measured],
                              y=[gmac_per_s(r) for r in measured], marker_color="#2ca02c",
                              name="achieved"))
    peak = run.peak
    if peak is not None and peak.measured:
        for threads in sorted({r.threads for r in measured if peak.at(r.threads)}):
            figure.add_hline(y=peak.at(threads) / FLOPS_PER_MAC, line_dash="dash",
                             annotation_text=f"matmul peak, {threads} thread(s)")
        note = f"Peak probe: {escape(peak.method)}; " + ", ".join(
            f"{threads} thread(s) {gflops:.1f} GFLOP/s"
            for threads, gflops in sorted(peak.gflops_by_threads.items()))
    elif peak is not None:
        note = f"Peak compute {escape(peak.method)}."
    else:
        note = "The device's peak compute was not probed in this run."
    figure.update_layout(height=380, yaxis_title="GMAC/s", margin=dict(l=10, r=10, t=20, b=40))
    return ("<h3>Efficiency: GMAC/s achieved</h3>" + page.chart(figure, "efficiency")
            + f"<p class='hint'>{note}</p>")


def _facts(run: DeviceRun) -> str:
    rows = [page.row([key, _fact(value)]) for key, value in sorted(run.facts.to_json().items())]
    versions = sorted({(r.framework, r.framework_version or "?", r.runner or "?",
                        r.runner_runtime or "?") for r in run.results if r.framework_version})
    rows += [page.row([f"framework {framework}", f"{version} ({runner} runner: {runtime})"])
             for framework, version, runner, runtime in versions]
    return page.table(["fact", "value"], rows)


def _fact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _comparison(source: Source) -> dict[str, Any] | None:
    return source.document.baseline_comparison


def _baseline(source: Source) -> str:
    comparison = _comparison(source)
    assert comparison is not None
    baselines = ", ".join(str(run.get("path")) for run in comparison.get("baseline", []))
    rows = []
    for workload in comparison.get("workloads", []):
        mode = workload.get("mode", "stored")  # files before paired mode: stored figures
        if workload.get("reason"):
            mode += f" ({workload['reason']})"
        rows += [_change_row(workload["device"], workload["workload"], mode, change)
                 for change in workload["changes"]]
    for device in comparison.get("devices", []):
        label = f"device total ({device['common_workloads']} workloads in both)"
        rows += [_change_row(device["device"], label, "", change)
                 for change in device["changes"]]
    lists = [(title, [f"{k['workload']} on {k['device']}" for k in comparison.get(key, [])])
             for title, key in (("new (not in the baseline)", "new"),
                                ("missing (in the baseline, not timed)", "missing"))]
    extra = "".join(f"<p>{escape(title)}: {escape(', '.join(items))}</p>"
                    for title, items in lists if items)
    return (f"<section><h2>Against the baseline ({escape(source.name)})</h2>"
            f"<p>Baseline: {escape(baselines)}; fail on: "
            f"{escape(', '.join(comparison.get('fail_on', [])) or 'nothing (report only)')}</p>"
            + page.table(["device", "workload", "mode", "metric", "baseline", "now", "change",
                      "noise", "verdict"], rows, sortable=True) + extra + "</section>")


def _change_row(device: str, workload: str, mode: str, change: dict[str, Any]) -> str:
    shown = change.get("shown")
    if shown is None:  # a file written before the shown values: the raw figures
        metric = METRICS.get(change["metric"])
        scale = 1e3 if metric is not None and metric.latency else 1
        shown = {"baseline": f"{change['baseline'][0] * scale:.4g}",
                 "now": f"{change['now'][0] * scale:.4g}", "change": f"{change['change']:+.4g}",
                 "noise": ""}
    verdict = change.get("verdict", "")
    return page.row([device, workload, mode, change["metric"], shown["baseline"], shown["now"],
                     shown["change"], shown["noise"], verdict],
                    css="regressed" if change.get("failed") else "")


def _megabytes(value: int | None) -> float | None:
    return None if value is None else value / 1e6
