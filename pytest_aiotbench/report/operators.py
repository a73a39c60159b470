"""Where each workload spends its time, operator by operator, and what its delegate took:
the terminal's one line per profiled workload and the HTML report's operators and delegation
sections, from the results' ``profile`` (``--aiot-profile``) and the artifacts' delegation
facts (found at export, always there)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

import plotly.graph_objects as go

from pytest_aiotbench.artifacts.delegation import Delegation
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.report import page
from pytest_aiotbench.runner.protocol import Profile

#: Operator types named in the terminal line; the HTML bars name this many per workload and
#: stack the rest as "other".
TOP_TYPES = 4
CHART_TYPES = 8
OTHER = "other"
FALLBACK_MARK = " (fallback)"
BETWEEN = "between operators"


def shares(profile: Profile, count: int) -> list[tuple[str, bool, float]]:
    """(op type, ran outside the delegate, mean seconds per inference) of the costliest
    ``count`` kinds, then the rest as one "other" entry; an op type split between the
    delegate and the framework's own kernels is two entries."""
    totals: dict[tuple[str, bool], float] = {}
    for op in profile.ops:
        key = (op.op_type, op.fell_back)
        totals[key] = totals.get(key, 0.0) + op.time_s
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    top = [(op_type, fell_back, seconds) for (op_type, fell_back), seconds in ranked[:count]]
    rest = sum(seconds for _, seconds in ranked[count:])
    return top + ([(OTHER, False, rest)] if rest > 0 else [])


def fallback_s(profile: Profile) -> float:
    return sum(op.time_s for op in profile.ops if op.fell_back)


def has_delegate(profile: Profile) -> bool:
    return any(not op.fell_back for op in profile.ops)


def top_types(profile: Profile) -> str:
    """The costliest op types with their shares; those outside the delegate marked, where
    there is one (without any, every op is the framework's own and a mark says nothing)."""
    total = profile.total_s or float("nan")
    marked = has_delegate(profile)
    return ", ".join(f"{op_type}{FALLBACK_MARK if fell_back and marked else ''} "
                     f"{seconds / total:.0%}"
                     for op_type, fell_back, seconds in shares(profile, TOP_TYPES)
                     if op_type != OTHER)


def _outside(profile: Profile) -> str:
    if not has_delegate(profile):
        return "no delegate: every op on the framework's own kernels"
    return f"outside the delegate {fallback_s(profile) / (profile.total_s or float('nan')):.0%}"


def terminal_lines(results: Iterable[WorkloadResult]) -> list[str]:
    """One line per workload profiled: its costliest op types with their shares of the
    profiled inference, how much the profiler accounts for, what ran outside the delegate."""
    lines = []
    for result in results:
        profile = result.profile
        if profile is None:
            continue
        label = result.key.label
        if not profile.available:
            lines.append(f"operators {label}: no profile: {profile.unavailable}")
            continue
        total = profile.total_s or float("nan")
        lines.append(f"operators {label}: {top_types(profile)} | {len(profile.ops)} ops "
                     f"account for {profile.ops_s / total:.0%} of {total * 1e3:.3g} ms "
                     f"profiled; {_outside(profile)}")
    if lines:
        lines.insert(0, "operators: each workload's costliest operator types, as shares of "
                        "one profiled inference (a separate pass after timing, its own "
                        "instance; the timed figures above never include the profiler)")
    return lines


def delegation_of(result: WorkloadResult) -> Delegation | None:
    """The artifact's delegation facts as its results row carries them (None: not found)."""
    raw: Any = (result.artifact or {}).get("delegation")
    if not isinstance(raw, dict):
        return None
    try:
        return Delegation.from_json(raw)
    except (KeyError, TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------- HTML
def operators_section(results: list[WorkloadResult]) -> str:
    """``<section id="operators">``: per device and network, one stacked bar per workload
    (the frameworks side by side), each op type a segment of its mean time per inference,
    the segments outside the delegate hatched, the time in no operator grey; and a table of
    every profile, or why none."""
    profiled = [r for r in results if r.profile is not None]
    if not profiled:
        return ""
    parts = ["<section id='operators'><h2>Operators: where one inference spends its time"
             "</h2><p class='hint'>A separate profiling pass after timing, on an instance of "
             "its own, with the framework's own profiler (its cost never reaches the timed "
             "figures). Hatched segments, and op types marked (fallback), ran outside the "
             "delegate, on the framework's own kernels.</p>"]
    groups: dict[tuple[str, str], list[WorkloadResult]] = {}
    for result in profiled:
        if result.profile is not None and result.profile.available:
            groups.setdefault((result.key.device, result.key.network_label), []).append(result)
    for (device, network), group in groups.items():
        parts.append(f"<h3>{escape(network)} on {escape(device)}</h3>"
                     + page.chart(_stacked(group), "operators", count=len(group)))
    parts.append(_profile_table(profiled))
    parts.append("</section>")
    return "".join(parts)


def _stacked(group: list[WorkloadResult]) -> go.Figure:
    names = [r.key.framework_label for r in group]
    segments: dict[tuple[str, bool], list[float]] = {}
    for index, result in enumerate(group):
        assert result.profile is not None
        for op_type, fell_back, seconds in shares(result.profile, CHART_TYPES):
            segments.setdefault((op_type, fell_back), [0.0] * len(group))[index] += seconds
    # What the profiler booked to no operator (the framework's work between them, and the
    # profiler's own): the bar's length is then the profiled inference.
    segments[(BETWEEN, False)] = [max(0.0, (r.profile.total_s or 0.0) - r.profile.ops_s)
                                  for r in group if r.profile is not None]
    figure = go.Figure()
    for (op_type, fell_back), seconds in segments.items():
        figure.add_trace(go.Bar(
            y=names, x=[s * 1e3 for s in seconds], orientation="h",
            name=op_type + (FALLBACK_MARK if fell_back else ""),
            marker_pattern_shape="/" if fell_back else "",
            marker_color="#d0d0d0" if op_type == BETWEEN else None,
            hovertemplate="%{x:.3f} ms<extra>%{fullData.name}</extra>"))
    figure.update_layout(barmode="stack", height=160 + 48 * len(group),
                         xaxis_title="ms per profiled inference", yaxis_autorange="reversed",
                         margin=dict(l=10, r=10, t=20, b=40), legend_font_size=10)
    return figure


PROFILE_COLUMNS = ["workload", "device", "runner", "profiler", "runs", "profiled ms",
                   "timed median ms", "ops", "ops' share", "outside the delegate",
                   "costliest op types"]


def _profile_table(results: list[WorkloadResult]) -> str:
    rows = []
    for r in results:
        profile = r.profile
        assert profile is not None
        median = r.stats.median_s * 1e3 if r.stats else None
        if not profile.available:
            rows.append(page.row([r.key.label, r.key.device, r.runner or "", profile.source,
                                  page.number(None, ""), page.number(None, ""),
                                  page.number(median, "{:.3f}"), page.number(None, ""),
                                  page.number(None, ""), page.number(None, ""),
                                  f"unavailable: {profile.unavailable}"], "unavailable"))
            continue
        total = profile.total_s or float("nan")
        rows.append(page.row([
            r.key.label, r.key.device, r.runner or "", profile.source,
            page.number(profile.runs, "{}"), page.number(total * 1e3, "{:.3f}"),
            page.number(median, "{:.3f}"), page.number(len(profile.ops), "{}"),
            page.number(profile.ops_s / total, "{:.0%}"),
            page.number(fallback_s(profile) / total if has_delegate(profile) else None,
                        "{:.0%}"), top_types(profile)]))
    return page.table(PROFILE_COLUMNS, rows, sortable=True)


DELEGATION_COLUMNS = ["workload", "device", "delegate", "ops delegated", "ops outside",
                      "op types delegated", "op types outside (fallback)", "found by"]


def delegation_section(results: list[WorkloadResult]) -> str:
    """``<section id="delegation">``: for every artifact, what the framework handed to its
    delegate and what it left to its own kernels, as found at export (no profiling)."""
    rows = []
    for r in results:
        facts = delegation_of(r)
        if facts is None:
            continue
        rows.append(page.row([
            r.key.label, r.key.device, facts.delegate,
            page.number(facts.delegated_ops, "{}"),
            page.number(facts.fallback_ops, "{}"),
            _counts(facts.delegated), _counts(facts.fallback), facts.source],
            "fallback" if facts.fallback else ""))
    if not rows:
        return ""
    return ("<section id='delegation'><h2>Delegation: what each artifact's delegate takes"
            "</h2><p class='hint'>Found in each exported file at export, without running it: "
            "the operators the framework hands to its delegate or kernel library, and those "
            "it leaves to its own kernels (rows with any are marked).</p>"
            + page.table(DELEGATION_COLUMNS, rows, sortable=True) + "</section>")


def _counts(by_type: dict[str, int]) -> str:
    ranked = sorted(by_type.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{op_type} x{count}" for op_type, count in ranked) or "-"
