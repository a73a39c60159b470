"""The history page: a folder of saved runs -> one self-contained HTML page over time.

    aiotbench-report --history DIR -o history.html

Each ``--aiot-json`` results file, and each pytest-benchmark run (``--benchmark-save``,
``--benchmark-autosave``) that holds aiotbench records, is one run, placed on the time axis
by when it was made. The page shows each workload's median over the runs with its
confidence interval, VIPS per device, the release gate's verdicts, and where a framework's
version changed; a plain table repeats the numbers for readers without JavaScript. Files of
neither kind are listed as skipped, with the reason. The page's pieces (tables, charts,
style) are the report's own (``report.html``), plotly's JavaScript inlined once.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from pytest_aiotbench.gate.baseline import AIOTBENCH_JSON, PYTEST_BENCHMARK
from pytest_aiotbench.gate.figures import EXTRA_INFO_KEY, WorkloadFigures
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.result import GateVerdict
from pytest_aiotbench.report import page
from pytest_aiotbench.report.json_file import SCHEMA, ResultsDocument, ResultsFileError

#: The gate's verdicts that are marked on the latency chart: (colour, marker symbol).
MARKED_VERDICTS = {"regressed": ("#d62728", "x"), "worse": ("#ff7f0e", "triangle-up")}


class HistoryError(ValueError):
    """A folder with no usable run; the message says what was looked for and what was found."""


class _NotARun(ValueError):
    """A file of the folder that is no usable run; the message is the reason it is skipped."""


def describe_gate(gate: GateVerdict) -> str:
    """One line: ``regressed: paired, ratio 1.210 [1.150, 1.270], 12 rounds, ...``."""
    parts = [gate.mode or "mode not recorded"]
    if gate.ratio is not None:
        interval = (f" [{gate.ci_low:.3f}, {gate.ci_high:.3f}]"
                    if gate.ci_low is not None and gate.ci_high is not None else "")
        parts.append(f"{gate.metric or 'median'} ratio {gate.ratio:.3f}{interval}")
    if gate.rounds is not None:
        parts.append(f"{gate.rounds} rounds")
    if gate.limit:
        parts.append(f"limit {gate.limit}")
    if gate.reason:
        parts.append(gate.reason)
    if gate.flagged:
        parts.append(f"on flagged figures: {gate.flagged}")
    return f"{gate.verdict}: {', '.join(parts)}"


@dataclasses.dataclass(frozen=True)
class HistoryPoint:
    """One workload in one run."""

    figures: WorkloadFigures
    gate: GateVerdict | None = None

    @property
    def key(self) -> WorkloadKey:
        return self.figures.key


@dataclasses.dataclass(frozen=True)
class HistoryRun:
    """One saved run: a results file or a pytest-benchmark run."""

    #: The file's path under the history folder.
    name: str
    kind: str
    #: When the run was made (UTC); the file's modification time where the run says nothing.
    created: datetime.datetime
    dated_by_file: bool
    points: tuple[HistoryPoint, ...]
    #: Each device's VIPS; a device none of whose workloads was scored is left out.
    vips: dict[str, float]

    @property
    def when(self) -> str:
        """The run's time as the charts' axis and the tables show it (UTC, no offset: plotly
        reads dates without one)."""
        return self.created.strftime("%Y-%m-%d %H:%M:%S")


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    name: str
    reason: str


@dataclasses.dataclass(frozen=True)
class VersionChange:
    """The first run in which a workload ran on another framework version than before."""

    run: HistoryRun
    key: WorkloadKey
    before: str
    after: str

    @property
    def text(self) -> str:
        return f"{self.key.framework} {self.before} → {self.after}"


@dataclasses.dataclass(frozen=True)
class History:
    folder: Path
    #: Oldest first.
    runs: tuple[HistoryRun, ...]
    skipped: tuple[SkippedFile, ...]

    def series(self) -> dict[WorkloadKey, list[tuple[HistoryRun, HistoryPoint]]]:
        """Each workload's points over the runs, oldest first; workloads in key order."""
        found: dict[WorkloadKey, list[tuple[HistoryRun, HistoryPoint]]] = {}
        for run in self.runs:
            for point in run.points:
                found.setdefault(point.key, []).append((run, point))
        return dict(sorted(found.items()))

    def version_changes(self) -> list[VersionChange]:
        changes = []
        for key, points in self.series().items():
            previous = None
            for run, point in points:
                version = point.figures.framework_version
                if version and previous and version != previous:
                    changes.append(VersionChange(run, key, previous, version))
                previous = version or previous
        return changes


# ---------------------------------------------------------------------------- reading
def read_history(folder: Path) -> History:
    """Every ``*.json`` file under the folder (sub-folders too: pytest-benchmark keeps its
    runs in ``.benchmarks/<machine>/``); raise HistoryError when none is a usable run."""
    folder = Path(folder)
    files = sorted(path for path in folder.rglob("*.json") if path.is_file())
    runs, skipped = [], []
    for path in files:
        name = path.relative_to(folder).as_posix()
        try:
            runs.append(_read_run(path, name))
        except _NotARun as exc:
            skipped.append(SkippedFile(name, str(exc)))
    if not runs:
        found = ("found no .json file" if not files else
                 f"skipped {len(skipped)} file(s): "
                 + "; ".join(f"{file.name}: {file.reason}" for file in skipped))
        raise HistoryError(f"{folder} holds no usable run: looked for --aiot-json results files "
                           f"(schema {SCHEMA}) and pytest-benchmark runs with aiotbench "
                           f"records among the *.json files under it; {found}")
    runs.sort(key=lambda run: (run.created, run.name))
    return History(folder, tuple(runs), tuple(skipped))


def _read_run(path: Path, name: str) -> HistoryRun:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise _NotARun("not a text file") from None
    except json.JSONDecodeError as exc:
        raise _NotARun(f"not JSON ({exc})") from None
    except OSError as exc:
        raise _NotARun(f"cannot read it ({exc.strerror or exc})") from None
    if isinstance(data, dict) and "schema" in data:
        kind, points, vips, created = AIOTBENCH_JSON, *_from_results(data)
    elif isinstance(data, dict) and isinstance(data.get("benchmarks"), list):
        kind, points, vips, created = PYTEST_BENCHMARK, *_from_pytest_benchmark(data)
    else:
        raise _NotARun(f"neither an aiotbench results file (schema {SCHEMA}, as --aiot-json "
                       "writes) nor a pytest-benchmark run")
    if not points:
        raise _NotARun(f"{kind} with no timed workload (every one failed or was skipped)")
    when = _utc(created)
    dated_by_file = when is None
    if when is None:  # a run that does not say when it was made: when its file was
        when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    return HistoryRun(name, kind, when, dated_by_file, tuple(points), vips)


def _from_results(data: dict[str, Any]) -> tuple[list[HistoryPoint], dict[str, float], str]:
    try:
        document = ResultsDocument.from_json(data)
    except ResultsFileError as exc:
        raise _NotARun(str(exc)) from None
    # A row's gate is read leniently (GateVerdict.read): a gate of another version wrote it.
    points = [HistoryPoint(WorkloadFigures.of(row.result), row.result.gate)
              for device in document.devices.values() for row in device.workloads
              if row.result.stats is not None]
    vips = {alias: device.vips for alias, device in document.devices.items()
            if any(row.vips is not None for row in device.workloads)}
    return points, vips, document.created


def _from_pytest_benchmark(data: dict[str, Any]
                           ) -> tuple[list[HistoryPoint], dict[str, float], str]:
    points, others = [], 0
    for record in data["benchmarks"]:
        extra = record.get("extra_info") if isinstance(record, dict) else None
        if not isinstance(extra, dict) or EXTRA_INFO_KEY not in extra:
            others += 1
            continue
        try:
            figures = WorkloadFigures.from_json(extra[EXTRA_INFO_KEY])
        except (KeyError, TypeError, ValueError) as exc:
            raise _NotARun(f"record {record.get('name')!r} holds malformed aiotbench figures "
                           f"({type(exc).__name__}: {exc})") from None
        points.append(HistoryPoint(figures, GateVerdict.read(extra.get("gate"))))
    if not points:
        raise _NotARun(f"a pytest-benchmark run with no aiotbench records ({others} other "
                       "benchmark(s))")
    # A saved run keeps each workload's VIPS term, not the device's sum: summed here, and a
    # device without any term has no VIPS.
    vips: dict[str, float] = {}
    for point in points:
        if point.figures.vips is not None:
            device = point.key.device
            vips[device] = vips.get(device, 0.0) + point.figures.vips.value
    return points, vips, str(data.get("datetime") or "")


def _utc(text: str) -> datetime.datetime | None:
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    # A time without a zone is taken as UTC (what both writers record).
    return when.replace(tzinfo=datetime.UTC) if when.tzinfo is None else \
        when.astimezone(datetime.UTC)


# ------------------------------------------------------------------------------- page
def render(history: History) -> str:
    """The whole page as one HTML string."""
    changes = history.version_changes()
    body = [f"<h1>aiotbench history: {escape(str(history.folder))}</h1>",
            _runs(history), _latency(history, changes), _vips(history),
            _verdicts(history), _version_list(changes), _figures_table(history, changes)]
    return page.PAGE.format(title="aiotbench history", style=page.STYLE + HISTORY_STYLE,
                            plotly=get_plotlyjs(), body="\n".join(body),
                            sort_script=page.SORT_SCRIPT)


def write(path: Path, history: History) -> None:
    """Write the page through a temporary file beside it (a reader never sees half)."""
    page.write_page(path, render(history))


def _runs(history: History) -> str:
    rows = [page.row([run.name, run.kind,
                      run.when + (" (file time)" if run.dated_by_file else ""),
                      page.number(len(run.points), "{}"),
                      ", ".join(sorted({point.key.device for point in run.points}))])
            for run in history.runs]
    skipped = ("<p>No file was skipped.</p>" if not history.skipped else
               "<ul>" + "".join(f"<li data-file='{escape(file.name, quote=True)}'>"
                                f"{escape(file.name)}: {escape(file.reason)}</li>"
                                for file in history.skipped) + "</ul>")
    return ("<section id='history-runs'><h2>Runs (oldest first, times in UTC)</h2>"
            + page.table(["run", "kind", "created", "workloads", "devices"], rows)
            + "</section><section id='history-skipped'><h2>Skipped files</h2>"
            + skipped + "</section>")


def _series_name(key: WorkloadKey) -> str:
    return f"{key.label} on {key.device}"


def _milliseconds(seconds: float) -> float:
    return seconds * 1e3


def _hover(run: HistoryRun, point: HistoryPoint) -> str:
    median = point.figures.median_s
    lines = [_series_name(point.key), run.name,
             f"median {_milliseconds(median.value):.3f} ms "
             f"[{_milliseconds(median.low):.3f}, {_milliseconds(median.high):.3f}]",
             f"{point.key.framework} {point.figures.framework_version or '?'}"]
    if point.gate is not None:
        lines.append(f"gate {describe_gate(point.gate)}")
    return "<br>".join(escape(line) for line in lines)


def _latency(history: History, changes: list[VersionChange]) -> str:
    figure = go.Figure()
    series = history.series()
    for key, points in series.items():
        medians = [point.figures.median_s for _, point in points]
        figure.add_trace(go.Scatter(
            x=[run.when for run, _ in points], y=[_milliseconds(m.value) for m in medians],
            error_y=dict(type="data", symmetric=False,
                         array=[_milliseconds(m.high - m.value) for m in medians],
                         arrayminus=[_milliseconds(m.value - m.low) for m in medians]),
            mode="lines+markers", name=_series_name(key),
            text=[_hover(run, point) for run, point in points],
            hovertemplate="%{text}<extra></extra>"))
    for verdict, (colour, symbol) in MARKED_VERDICTS.items():
        marked = [(run, point) for points in series.values() for run, point in points
                  if point.gate is not None and point.gate.verdict == verdict]
        if marked:  # drawn over the workload's own point, so it shows which run failed
            figure.add_trace(go.Scatter(
                x=[run.when for run, _ in marked],
                y=[_milliseconds(point.figures.median_s.value) for _, point in marked],
                mode="markers", name=f"gate: {verdict}",
                marker=dict(color=colour, symbol=symbol, size=16, line=dict(width=2)),
                text=[_hover(run, point) for run, point in marked],
                hovertemplate="%{text}<extra></extra>"))
    _mark_version_changes(figure, changes)
    figure.update_layout(height=480, xaxis_title="run (UTC)",
                         yaxis_title="median ms per inference (log)", yaxis_type="log",
                         legend=dict(orientation="h", y=-0.25),
                         margin=dict(l=10, r=10, t=40, b=40))
    return ("<section id='history-latency'><h2>Median latency over runs</h2><p class='hint'>"
            "Each point: a workload's median in one run; whiskers: the median's confidence "
            "interval. Gate verdicts regressed and worse are marked; a dotted line marks the "
            "first run on another framework version.</p>"
            + page.chart(figure, "history-latency", count=len(series)) + "</section>")


def _mark_version_changes(figure: go.Figure, changes: list[VersionChange]) -> None:
    """A dotted line at each run where a framework's version changed, named once per run
    and change however many workloads it touched."""
    texts: dict[str, list[str]] = {}
    for change in changes:
        named = texts.setdefault(change.run.when, [])
        if change.text not in named:
            named.append(change.text)
    for when, named in texts.items():
        figure.add_vline(x=when, line=dict(color="#7f7f7f", dash="dot", width=2),
                         annotation_text="<br>".join(map(escape, named)),
                         annotation_position="top", annotation_font=dict(size=11, color="#555"))


def _vips(history: History) -> str:
    devices = sorted({device for run in history.runs for device in run.vips})
    if not devices:
        return ("<section id='history-vips'><h2>VIPS per device over runs</h2><p>No run "
                "has a VIPS score (no workload's accuracy was measured).</p></section>")
    figure = go.Figure()
    for device in devices:
        runs = [run for run in history.runs if device in run.vips]
        figure.add_trace(go.Scatter(
            x=[run.when for run in runs], y=[run.vips[device] for run in runs],
            mode="lines+markers", name=device,
            text=[escape(f"{device}: VIPS {run.vips[device]:.2f} ({run.name})") for run in runs],
            hovertemplate="%{text}<extra></extra>"))
    figure.update_layout(height=380, xaxis_title="run (UTC)", yaxis_title="VIPS",
                         margin=dict(l=10, r=10, t=30, b=40))
    return ("<section id='history-vips'><h2>VIPS per device over runs</h2><p class='hint'>"
            "VIPS is a sum over the workloads a run scored: compare runs of the same "
            "workloads.</p>" + page.chart(figure, "history-vips", count=len(devices))
            + "</section>")


def _by_run(history: History) -> Iterator[tuple[HistoryRun, HistoryPoint]]:
    """Every point, run by run (oldest first), each run's workloads in key order."""
    for run in history.runs:
        for point in sorted(run.points, key=lambda point: point.key):
            yield run, point


def _gated(history: History) -> Iterator[tuple[HistoryRun, HistoryPoint, GateVerdict]]:
    for run, point in _by_run(history):
        if point.gate is not None:
            yield run, point, point.gate


VERDICT_COLUMNS = ["run", "created", "device", "workload", "verdict", "mode", "ratio",
                   "CI low", "CI high", "rounds", "limit", "reason"]


def _verdicts(history: History) -> str:
    rows = [page.row([run.name, run.when, point.key.device, point.key.label, gate.verdict,
                      gate.mode or "", page.number(gate.ratio, "{:.3f}"),
                      page.number(gate.ci_low, "{:.3f}"), page.number(gate.ci_high, "{:.3f}"),
                      page.number(gate.rounds, "{}"), gate.limit or "", gate.reason or ""],
                 css="regressed" if gate.verdict == "regressed" else "")
            for run, point, gate in _gated(history)]
    table = (page.table(VERDICT_COLUMNS, rows, sortable=True) if rows else
             "<p>No run carries a gate verdict (a run gated with --aiot-baseline and "
             "--aiot-fail-on keeps one in each JSON row).</p>")
    return f"<section id='history-verdicts'><h2>Gate verdicts</h2>{table}</section>"


def _version_list(changes: list[VersionChange]) -> str:
    items = "".join(f"<li>{escape(change.run.name)} ({change.run.when}): "
                    f"{escape(_series_name(change.key))}: {escape(change.text)}</li>"
                    for change in changes)
    listed = f"<ul>{items}</ul>" if changes else "<p>No framework version changed.</p>"
    return ("<section id='history-version-changes'><h2>Framework version changes</h2>"
            + listed + "</section>")


FIGURE_COLUMNS = ["run", "created", "device", "workload", "median ms", "CI low ms",
                  "CI high ms", "framework version", "gate"]


def _figures_table(history: History, changes: list[VersionChange]) -> str:
    changed = {(change.run.name, change.key): change for change in changes}
    rows = []
    for run, point in _by_run(history):
        key, median, gate = point.key, point.figures.median_s, point.gate
        change = changed.get((run.name, key))
        version = point.figures.framework_version or "?"
        css = [*(["regressed"] if gate is not None and gate.verdict == "regressed" else []),
               *(["version-change"] if change is not None else [])]
        rows.append(page.row([
            run.name, run.when, key.device, key.label,
            page.number(_milliseconds(median.value), "{:.3f}"),
            page.number(_milliseconds(median.low), "{:.3f}"),
            page.number(_milliseconds(median.high), "{:.3f}"),
            f"{version} (was {change.before})" if change is not None else version,
            describe_gate(gate) if gate is not None else ""], css=" ".join(css)))
    return ("<section id='history-table'><h2>Every workload in every run</h2>"
            "<p class='hint'>The charts' figures; click a column to sort.</p>"
            + page.table(FIGURE_COLUMNS, rows, sortable=True) + "</section>")


HISTORY_STYLE = """
tr.version-change td { font-weight: bold; }
#history-skipped li { color: #a00; }
"""
