"""``--aiot-fail-on``: which changes against the baseline fail a release.

Written as ``metric:limit`` pairs, for example ``median:+10%,top1:-0.01,vips:-5%``. A limit
ending in ``%`` is relative to the baseline; otherwise it is absolute (latency in ``ms``,
``us`` or ``s``; accuracy as a fraction; VIPS/VOPS in their own units). The sign says which
way is worse and may be left out; the opposite sign is refused, since it would fail a
release for getting better.
"""

from __future__ import annotations

import dataclasses
import difflib
import re


class ThresholdError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    #: +1: a rise is worse (latency); -1: a fall is worse (accuracy, VIPS).
    worse: int
    #: "workload": judged per item; "device": judged on the device's total at session end.
    scope: str
    #: True for seconds (absolute limits take ms/us/s); False for plain numbers.
    latency: bool
    #: The latency quantile it is (paired rounds compare it round by round).
    quantile: float | None = None


#: median/p90: latency, with their order-statistic intervals as noise; accuracy: what VIPS
#: uses (labelled top-1, else agreement with fp32); top1/top5: labelled images only;
#: vips/vops: the device's totals over the workloads both runs scored.
METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("median", +1, "workload", True, 0.5),
    Metric("p90", +1, "workload", True, 0.9),
    Metric("accuracy", -1, "workload", False),
    Metric("top1", -1, "workload", False),
    Metric("top5", -1, "workload", False),
    Metric("vips", -1, "device", False),
    Metric("vops", -1, "device", False),
)}

LATENCY_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
#: The largest relative limit accepted for a rise: beyond it a typo is likelier than intent.
MAX_RISE = 10.0
_LIMIT = re.compile(r"^(?P<sign>[+-]?)(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>%|ms|us|s)?$")


@dataclasses.dataclass(frozen=True)
class Threshold:
    metric: Metric
    #: The size of the change that fails, in the worse direction (a fraction when relative).
    limit: float
    relative: bool
    text: str

    def change(self, baseline: float, now: float) -> float:
        """The change in the worse direction (positive: worse), as this limit measures it."""
        worse = (now - baseline) * self.metric.worse
        if not self.relative:
            return worse
        return worse / abs(baseline) if baseline else (0.0 if worse == 0 else float("inf"))

    def describe_limit(self) -> str:
        sign = "+" if self.metric.worse > 0 else "-"
        if self.relative:
            return f"{sign}{self.limit * 100:g}%"
        if self.metric.latency:
            return f"{sign}{self.limit * 1e3:g} ms"
        return f"{sign}{self.limit:g}"


def parse_fail_on(text: str | None) -> tuple[Threshold, ...]:
    """Parse ``metric:limit,...``; raise ThresholdError naming the bad part."""
    if text is None or not text.strip():
        return ()
    thresholds: dict[str, Threshold] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, colon, limit = part.partition(":")
        name = name.strip().lower()
        if name not in METRICS:
            close = difflib.get_close_matches(name, list(METRICS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ThresholdError(f"--aiot-fail-on: unknown metric {name!r} in {part!r}; {hint}"
                                 f"metrics: {', '.join(METRICS)}")
        if not colon or not limit.strip():
            raise ThresholdError(f"--aiot-fail-on: {part!r} has no limit; write it as "
                                 f"{_example(METRICS[name])}")
        if name in thresholds:
            raise ThresholdError(f"--aiot-fail-on: {name!r} is given twice")
        thresholds[name] = _threshold(METRICS[name], limit.strip(), part)
    return tuple(thresholds.values())


def _threshold(metric: Metric, limit: str, part: str) -> Threshold:
    match = _LIMIT.match(limit)
    if match is None:
        raise ThresholdError(f"--aiot-fail-on: {part!r}: cannot read the limit {limit!r}; "
                             f"write it as {_example(metric)}")
    sign, unit = match["sign"], match["unit"]
    number = float(match["number"])
    worse_sign = "+" if metric.worse > 0 else "-"
    if sign and sign != worse_sign:
        better = "faster" if metric.latency else "higher"
        raise ThresholdError(f"--aiot-fail-on: {part!r} would fail a release for being "
                             f"{better}; a regression of {metric.name} is "
                             f"{worse_sign}: {_example(metric)}")
    if unit == "%":
        fraction = number / 100
        if metric.worse < 0 and fraction >= 1:
            raise ThresholdError(f"--aiot-fail-on: {part!r} is out of range: {metric.name} "
                                 "cannot fall by 100% or more; use a limit below -100%")
        if metric.worse > 0 and fraction > MAX_RISE:
            raise ThresholdError(f"--aiot-fail-on: {part!r} is out of range: use at most "
                                 f"+{MAX_RISE:.0%}")
        return Threshold(metric, fraction, True, part)
    if metric.latency:
        if unit is None:
            raise ThresholdError(f"--aiot-fail-on: {part!r}: give a unit, % of the baseline "
                                 "or ms/us/s, for example median:+10% or median:+2ms")
        return Threshold(metric, number * LATENCY_UNITS[unit], False, part)
    if unit is not None:
        raise ThresholdError(f"--aiot-fail-on: {part!r}: {metric.name} has no unit; give a "
                             f"% or a plain number: {_example(metric)}")
    if metric.name in ("accuracy", "top1", "top5") and number > 1:
        raise ThresholdError(f"--aiot-fail-on: {part!r} is out of range: {metric.name} is a "
                             "fraction (0 to 1), so a drop of 1 point is -0.01")
    return Threshold(metric, number, False, part)


def _example(metric: Metric) -> str:
    if metric.latency:
        return f"{metric.name}:+10%"
    if metric.scope == "device":
        return f"{metric.name}:-5%"
    return f"{metric.name}:-0.01"
