"""The release gate: this run against a baseline, change by change, with the noise in view.

Stored figures: a change fails only when it is beyond both the threshold and the noise: the
smallest change that both runs' confidence intervals allow (this run's best bound against
the baseline's worst) must exceed the limit. A slowdown that only the noise could explain
never fails; one that clears the noise but not the threshold is shown, not failed.

Paired (the baseline's artifact re-timed beside this one, gate/pairing.py): a latency change
is the median of the per-round ratios; it fails when it is beyond its limit and its interval
excludes "no change". Drift between sessions cannot show in it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

from pytest_aiotbench.gate.baseline import Baseline
from pytest_aiotbench.gate.figures import Estimate, WorkloadFigures
from pytest_aiotbench.gate.pairing import (
    PAIRED,
    STORED,
    UNCHANGED,
    BaselineArtifacts,
    PairedRatio,
    PairPlan,
    plan,
)
from pytest_aiotbench.gate.thresholds import METRICS, Metric, Threshold
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.flags import kinds
from pytest_aiotbench.measure.result import PASSED, GateVerdict, WorkloadResult

#: Shown for every compared workload, gated or not.
ALWAYS_SHOWN = ("median", "accuracy")


def _shown_only(metric: Metric) -> Threshold:
    """A measure of change that never fails: relative for latency and scores, absolute for
    accuracy fractions (a drop of 0.02 reads better than -2.6%)."""
    relative = metric.latency or metric.scope == "device"
    return Threshold(metric, math.inf, relative, "")


@dataclasses.dataclass(frozen=True)
class Change:
    measure: Threshold
    baseline: Estimate
    now: Estimate
    #: Paired: now over the baseline re-timed beside it, per round (None: stored figures).
    ratio: Estimate | None = None
    rounds: int | None = None
    #: Stored latency figures from a flagged row, which side and which flags ("" if none):
    #: a verdict of worse or regressed then says it may be the machine, not the artifact.
    flagged: str = ""

    @classmethod
    def paired(cls, measure: Threshold, paired: PairedRatio) -> Change:
        return cls(measure, paired.baseline, paired.now, paired.ratio, paired.rounds)

    def _of_ratio(self, ratio: float) -> float:
        """A ratio of latencies as a worse-direction change, as this limit measures it."""
        return ratio - 1 if self.measure.relative else (ratio - 1) * self.baseline.value

    @property
    def metric(self) -> Metric:
        return self.measure.metric

    @property
    def gated(self) -> bool:
        return math.isfinite(self.measure.limit)

    @property
    def change(self) -> float:
        """Worse-direction change of the figures themselves (positive: worse)."""
        if self.ratio is not None:
            return self._of_ratio(self.ratio.value)
        return self.measure.change(self.baseline.value, self.now.value)

    @property
    def least(self) -> float:
        """The smallest worse-direction change the intervals allow."""
        if self.ratio is not None:
            return self._of_ratio(self.ratio.low)
        if self.metric.worse > 0:
            return self.measure.change(self.baseline.high, self.now.low)
        return self.measure.change(self.baseline.low, self.now.high)

    @property
    def most(self) -> float:
        """The largest worse-direction change the intervals allow (below 0: surely better)."""
        if self.ratio is not None:
            return self._of_ratio(self.ratio.high)
        if self.metric.worse > 0:
            return self.measure.change(self.baseline.low, self.now.high)
        return self.measure.change(self.baseline.high, self.now.low)

    @property
    def beyond_noise(self) -> bool:
        return self.least > 0 or self.most < 0

    @property
    def failed(self) -> bool:
        if not self.gated:
            return False
        if self.ratio is not None:  # the interval excludes "no change", the ratio its limit
            return self.least > 0 and self.change > self.measure.limit
        return self.least > self.measure.limit

    def stored_ratio(self) -> Estimate:
        """Now over the baseline, with the interval both runs' intervals allow."""
        if self.ratio is not None:
            return self.ratio
        base = self.baseline
        return Estimate(self.now.value / base.value, self.now.low / base.high,
                        self.now.high / base.low)

    def signed(self, worse_change: float) -> str:
        """A worse-direction change as the figure moved (+ up, - down)."""
        moved = worse_change * self.metric.worse
        if self.measure.relative:
            return f"{moved:+.1%}"
        if self.metric.latency:
            return f"{moved * 1e3:+.4g} ms"
        return f"{moved:+.3f}"

    def value(self, estimate: Estimate) -> str:
        if self.metric.latency:
            return f"{estimate.value * 1e3:.4g} ms"
        return f"{estimate.value:.3f}" if self.metric.scope == "workload" else \
            f"{estimate.value:.2f}"

    def noise(self) -> str:
        if self.ratio is not None:
            side = "beyond" if self.beyond_noise else "within"
            return (f"{side}: ratio {self.ratio.value:.3f} [{self.ratio.low:.3f}, "
                    f"{self.ratio.high:.3f}], {self.rounds} rounds")
        if self.baseline.low == self.baseline.high and self.now.low == self.now.high:
            return "exact"
        if self.least > 0:
            return f"beyond (at least {self.signed(self.least)})"
        if self.most < 0:
            return f"beyond (at least {self.signed(self.most)})"
        return "within"

    @property
    def inconclusive(self) -> bool:
        """Paired, not failed, yet the interval reaches beyond the limit: the rounds could not
        tell (a machine so loaded that both sides wait alike); it passes, said so."""
        return (self.ratio is not None and self.gated and not self.failed
                and self.most > self.measure.limit)

    def verdict(self) -> str:
        if self.failed:
            return f"REGRESSED (limit {self.measure.describe_limit()}){self.flagged_note()}"
        if self.inconclusive:
            return (f"inconclusive (the interval reaches {self.signed(self.most)}, beyond "
                    f"{self.measure.describe_limit()})")
        if self.least > 0:
            worse = f"worse, within {self.measure.describe_limit()}" if self.gated else "worse"
            return worse + self.flagged_note()
        if self.most < 0:
            return "better"
        return "ok"

    def flagged_note(self) -> str:
        """Said after a verdict of worse or regressed judged on flagged stored figures."""
        return f"; on flagged figures: {self.flagged}" if self.flagged else ""

    def word(self) -> str:
        """The verdict as one machine-readable word."""
        if self.failed:
            return "regressed"
        if self.inconclusive:
            return "inconclusive"
        return "worse" if self.least > 0 else "better" if self.most < 0 else "ok"

    def describe(self) -> str:
        noise = self.noise()
        if self.ratio is not None:
            return (f"{self.metric.name} {self.value(self.baseline)} -> {self.value(self.now)} "
                    f"re-timed side by side ({self.signed(self.change)}; paired {noise})")
        said = "exact figures, no noise" if noise == "exact" else f"{noise} the noise"
        return (f"{self.metric.name} {self.value(self.baseline)} -> {self.value(self.now)} "
                f"({self.signed(self.change)}; {said})")


@dataclasses.dataclass(frozen=True)
class WorkloadComparison:
    key: WorkloadKey
    baseline: WorkloadFigures
    now: WorkloadFigures
    changes: tuple[Change, ...]
    #: What else differs between the runs and may explain a change.
    context: tuple[str, ...]

    #: Earlier timings of this run that looked regressed, each re-timed to confirm.
    earlier: tuple[WorkloadComparison, ...] = ()
    #: PAIRED, STORED or UNCHANGED (gate/pairing.py); why stored where the artifact
    #: changed, or which file the pair was timed against.
    mode: str = STORED
    reason: str | None = None

    @property
    def median(self) -> Change | None:
        return next((c for c in self.changes if c.metric.name == "median"), None)

    def verdict(self) -> GateVerdict | None:
        """The median's verdict as the workload's results row carries it."""
        median = self.median
        if median is None:
            return None
        ratio = median.stored_ratio()
        worse = median.word() in ("regressed", "worse")
        return GateVerdict(median.word(), self.mode, ratio.value, ratio.low, ratio.high,
                           median.rounds, "median", median.measure.text or None,
                           self.reason if self.mode == STORED else None,
                           median.flagged if worse and median.flagged else None)

    def mode_text(self) -> str:
        return f"stored figures: {self.reason}" if self.mode == STORED and self.reason else \
            self.mode

    @property
    def failed(self) -> bool:
        return any(change.failed for change in self.changes)

    def failed_summary(self) -> str:
        return ", ".join(f"{change.metric.name} {change.signed(change.change)}"
                         for change in self.changes if change.failed)

    def failure_message(self, baseline: Baseline) -> str:
        failed = [change for change in self.changes if change.failed]
        lines = [f"{self.key.label} on {self.key.device} regressed against the baseline "
                 f"{baseline.where()} ({self.mode_text()}):"]
        lines += [f"  {change.describe()} exceeds {change.measure.describe_limit()}"
                  + change.flagged_note() for change in failed]
        if self.earlier:
            lines.append(f"  confirmed: {len(self.earlier) + 1} timings all regressed "
                         f"({'; '.join(c.failed_summary() for c in (*self.earlier, self))})")
        if self.context:
            lines.append("  also changed: " + "; ".join(self.context))
        return "\n".join(lines)

    def baseline_for_totals(self) -> WorkloadFigures:
        """The baseline's figures as the device totals sum them: where the pair was re-timed,
        its VIPS/VOPS terms at the time this session measured for it (this median over the
        paired ratio), so drift between the sessions does not move the totals either."""
        median = self.median
        if median is None or median.ratio is None or self.baseline.vips is None:
            return self.baseline
        retimed_s = self.now.median_s.value / median.ratio.value
        scale = self.baseline.median_s.value / retimed_s
        return dataclasses.replace(self.baseline, vips=_scaled(self.baseline.vips, scale),
                                   vops=_scaled(self.baseline.vops, scale))

    def retimed_note(self) -> str | None:
        if not self.earlier:
            return None
        return (f"re-timed: {len(self.earlier)} earlier timing(s) looked regressed ("
                + "; ".join(c.failed_summary() for c in self.earlier) + ")")


@dataclasses.dataclass(frozen=True)
class DeviceComparison:
    device: str
    #: How many workloads both runs scored: VIPS/VOPS are summed over these only, so a
    #: workload added or dropped does not read as a change.
    common: int
    changes: tuple[Change, ...]

    @property
    def failed(self) -> bool:
        return any(change.failed for change in self.changes)


@dataclasses.dataclass(frozen=True)
class GateSummary:
    workloads: tuple[WorkloadComparison, ...]
    devices: tuple[DeviceComparison, ...]
    #: Timed this run, not in the baseline (listed, never failed).
    new: tuple[WorkloadKey, ...]
    #: In the baseline, on a device of this run, but not timed this run (listed).
    missing: tuple[WorkloadKey, ...]
    #: Devices of the baseline that this run did not benchmark.
    devices_not_run: tuple[str, ...]

    @property
    def failed_devices(self) -> list[DeviceComparison]:
        return [device for device in self.devices if device.failed]


class ReleaseGate:
    def __init__(self, baseline: Baseline, thresholds: tuple[Threshold, ...], confirm: int = 1,
                 *, artifacts: BaselineArtifacts | None = None, ab: str = "auto",
                 protocol: str = "rigorous", confidence: float = 0.95):
        self.baseline = baseline
        self.thresholds = {threshold.metric.name: threshold for threshold in thresholds}
        #: How many fresh re-timings a workload's regression must survive before it fails.
        self.confirm = confirm
        #: Where the baseline's artifacts are looked for (None: nowhere, stored figures).
        self.artifacts = artifacts
        self.ab = ab if artifacts is not None else "off"
        self.protocol = protocol
        self.confidence = confidence
        self.comparisons: dict[WorkloadKey, WorkloadComparison] = {}
        self._plans: dict[tuple[WorkloadKey, str], PairPlan] = {}

    def plan(self, key: WorkloadKey, sha256: str) -> PairPlan:
        """Whether this workload's artifact is to be timed beside the baseline's (looked up
        once: deploying, judging and the summary ask alike)."""
        if (key, sha256) not in self._plans:
            self._plans[key, sha256] = plan(self.baseline.workloads.get(key), sha256,
                                            ab=self.ab, protocol=self.protocol,
                                            artifacts=self.artifacts)
        return self._plans[key, sha256]

    def describe(self) -> str:
        gate = (", ".join(t.text for t in self.thresholds.values())
                + f" (confirmed by {self.confirm} re-timing(s))" if self.thresholds
                else "no --aiot-fail-on: comparing, not gating")
        return f"baseline {self.baseline.describe()}; {gate}"

    def _measure(self, name: str) -> Threshold:
        return self.thresholds.get(name) or _shown_only(METRICS[name])

    def judge(self, result: WorkloadResult,
              earlier: Sequence[WorkloadComparison] = ()) -> WorkloadComparison | None:
        """Compare one passed workload with its baseline; None when the baseline lacks it or
        the workload has nothing to compare (not passed, not timed). ``earlier``: this run's
        earlier timings of it that looked regressed (this one re-times them)."""
        if result.status != PASSED or result.stats is None:
            return None
        now = WorkloadFigures.of(result)
        before = self.baseline.workloads.get(now.key)
        if before is None:
            return None
        mode, reason = self._mode(before, now, result)
        names = [name for name in METRICS if METRICS[name].scope == "workload"
                 and (name in ALWAYS_SHOWN or name in self.thresholds)]
        changes = []
        flagged = _flagged(before, now)
        for name in names:
            quantile = METRICS[name].quantile
            if mode == PAIRED and quantile is not None:
                assert result.paired is not None
                changes.append(Change.paired(self._measure(name), PairedRatio.of(
                    result.paired, quantile, self.confidence)))
                continue
            pair = _figures(name, before, now)
            if pair is not None:
                changes.append(Change(self._measure(name), *pair,
                                      flagged=flagged if METRICS[name].latency else ""))
        comparison = WorkloadComparison(now.key, before, now, tuple(changes),
                                        _context(before, now), tuple(earlier), mode, reason)
        self.comparisons[now.key] = comparison
        result.gate = comparison.verdict()
        return comparison

    def _mode(self, before: WorkloadFigures, now: WorkloadFigures,
              result: WorkloadResult) -> tuple[str, str | None]:
        if result.paired is not None and result.paired.rounds:
            found = self.plan(now.key, now.artifact_sha256 or "").baseline_artifact
            return PAIRED, None if found is None else f"the baseline's artifact {found}"
        if before.artifact_sha256 == now.artifact_sha256:
            if before.framework_version == now.framework_version:
                return UNCHANGED, None
            return STORED, (f"the same artifact in {now.key.framework} "
                            f"{before.framework_version} -> {now.framework_version}: the "
                            "baseline's runtime cannot run beside this one")
        return STORED, self.plan(now.key, now.artifact_sha256 or "").reason

    def summarize(self, results: Iterable[WorkloadResult], devices: Iterable[str]) -> GateSummary:
        results = list(results)
        devices = list(devices)
        for result in results:  # an xdist controller judges what its workers measured
            if result.key not in self.comparisons:
                self.judge(result)
        timed = {r.key for r in results if r.stats is not None}
        new = sorted(key for key in timed if key not in self.baseline.workloads)
        missing = sorted(key for key in self.baseline.workloads
                         if key.device in devices and key not in timed)
        not_run = tuple(device for device in self.baseline.devices() if device not in devices)
        device_rows = []
        for device in devices:
            pairs = [(comparison.baseline_for_totals(), comparison.now)
                     for key, comparison in sorted(self.comparisons.items())
                     if key.device == device and comparison.baseline.vips is not None
                     and comparison.now.vips is not None]
            if not pairs:
                continue
            changes = tuple(Change(self._measure(name),
                                   _sum(getattr(before, name) for before, _ in pairs),
                                   _sum(getattr(now, name) for _, now in pairs))
                            for name in ("vips", "vops"))
            device_rows.append(DeviceComparison(device, len(pairs), changes))
        return GateSummary(tuple(self.comparisons[key] for key in sorted(self.comparisons)),
                           tuple(device_rows), tuple(new), tuple(missing), not_run)


def _figures(name: str, before: WorkloadFigures,
             now: WorkloadFigures) -> tuple[Estimate, Estimate] | None:
    attribute = f"{name}_s" if METRICS[name].latency else name
    first, second = getattr(before, attribute), getattr(now, attribute)
    return (first, second) if first is not None and second is not None else None


def _flagged(before: WorkloadFigures, now: WorkloadFigures) -> str:
    """Which side's row is flagged, and with what: "this run's row busy, unstable"."""
    return "; ".join(f"{side} row {', '.join(kinds(figures.flags))}"
                     for side, figures in (("this run's", now), ("the baseline's", before))
                     if figures.flags)


def _scaled(estimate: Estimate | None, factor: float) -> Estimate | None:
    if estimate is None:
        return None
    return Estimate(estimate.value * factor, estimate.low * factor, estimate.high * factor)


def _sum(estimates: Iterable[Estimate | None]) -> Estimate:
    values = [estimate for estimate in estimates if estimate is not None]
    return Estimate(sum(e.value for e in values), sum(e.low for e in values),
                    sum(e.high for e in values))


def _context(before: WorkloadFigures, now: WorkloadFigures) -> tuple[str, ...]:
    notes = []
    if before.framework_version != now.framework_version:
        notes.append(f"{now.key.framework} {before.framework_version} -> "
                     f"{now.framework_version}")
    if before.artifact_sha256 != now.artifact_sha256:
        notes.append(f"artifact {(before.artifact_sha256 or '?')[:12]} -> "
                     f"{(now.artifact_sha256 or '?')[:12]}")
    if before.runner != now.runner:
        notes.append(f"runner {before.runner} -> {now.runner}")
    if before.accuracy_source != now.accuracy_source:
        notes.append(f"accuracy from {before.accuracy_source} -> {now.accuracy_source}")
    elif before.images != now.images:
        notes.append(f"labelled images {before.images} -> {now.images}")
    return tuple(notes)
