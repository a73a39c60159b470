"""What the release gate compares of one workload, with each figure's noise.

The same typed figures come from a live result, from a row of an ``--aiot-json`` file and
from the ``extra_info`` of a pytest-benchmark record, so a baseline of either kind is
compared in exactly the same way as the run in progress.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.flags import Flag, read_flags
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.score.vips import workload_vips

FIGURES_SCHEMA = "pytest-aiotbench-figures/1"
#: The key of a pytest-benchmark record's ``extra_info`` that holds these figures; also how
#: a saved run's aiotbench records are told from other benchmarks.
EXTRA_INFO_KEY = "aiotbench"


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A figure and the interval the noise allows around it (low == high: exact)."""

    value: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Estimate:
        return cls(value, value, value)

    def to_json(self) -> list[float]:
        return [self.value, self.low, self.high]

    @classmethod
    def from_json(cls, data: Any) -> Estimate:
        value, low, high = (float(x) for x in data)
        return cls(value, low, high)


@dataclasses.dataclass(frozen=True)
class WorkloadFigures:
    key: WorkloadKey
    status: str
    median_s: Estimate
    p90_s: Estimate | None = None
    #: Accuracy figures are exact in one run; a baseline of several runs gives their range.
    accuracy: Estimate | None = None
    accuracy_source: str | None = None
    top1: Estimate | None = None
    top5: Estimate | None = None
    images: int = 0
    #: The workload's VIPS/VOPS terms, present when the workload was scored.
    vips: Estimate | None = None
    vops: Estimate | None = None
    framework_version: str | None = None
    artifact_sha256: str | None = None
    runner: str | None = None
    #: The artifact's size: where to look for the baseline's file by its hash, cheaply.
    artifact_bytes: int | None = None
    #: Why the row's timing may not be trusted (figures written before flags: none).
    flags: tuple[Flag, ...] = ()

    @classmethod
    def of(cls, result: WorkloadResult) -> WorkloadFigures:
        assert result.stats is not None, "figures need a timed result"
        stats = result.stats
        vips = vops = None
        if result.scored:
            vips_value, vops_value = workload_vips(result)
            vips = _score_estimate(vips_value, stats.median_s, stats.median_ci_low_s,
                                   stats.median_ci_high_s)
            vops = _score_estimate(vops_value, stats.median_s, stats.median_ci_low_s,
                                   stats.median_ci_high_s)
        return cls(
            key=result.key,
            status=result.status,
            median_s=Estimate(stats.median_s, stats.median_ci_low_s, stats.median_ci_high_s),
            p90_s=Estimate(stats.p90_s, stats.p90_ci_low_s, stats.p90_ci_high_s),
            accuracy=_exact(result.accuracy), accuracy_source=result.accuracy_source,
            top1=_exact(result.top1), top5=_exact(result.top5), images=result.images,
            vips=vips, vops=vops, framework_version=result.framework_version,
            artifact_sha256=(result.artifact or {}).get("sha256"), runner=result.runner,
            artifact_bytes=(result.artifact or {}).get("bytes"), flags=tuple(result.flags))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"figures": FIGURES_SCHEMA}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Estimate):
                value = value.to_json()
            elif isinstance(value, WorkloadKey):
                value = dataclasses.asdict(value)
            elif field.name == "flags":
                value = [flag.to_json() for flag in value]
            data[field.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkloadFigures:
        if data.get("figures") != FIGURES_SCHEMA:
            raise ValueError(f"figures of schema {data.get('figures')!r}, not {FIGURES_SCHEMA}")
        values = {field.name: data.get(field.name) for field in dataclasses.fields(cls)}
        values["key"] = WorkloadKey.from_json(data["key"])
        for name in ESTIMATES:
            if values[name] is not None:
                values[name] = Estimate.from_json(values[name])
        values["images"] = values["images"] or 0
        values["flags"] = tuple(read_flags(values["flags"]))
        return cls(**values)


#: The fields that are estimates (a figure and its interval).
ESTIMATES = ("median_s", "p90_s", "accuracy", "top1", "top5", "vips", "vops")


def _exact(value: float | None) -> Estimate | None:
    return None if value is None else Estimate.exact(float(value))


def _score_estimate(score: float, median_s: float, low_s: float, high_s: float) -> Estimate:
    """A VIPS/VOPS term and its interval: the term is inversely proportional to the time per
    image, so the median's interval bounds it (a slower bound gives the lower term)."""
    if median_s <= 0 or low_s <= 0:
        return Estimate.exact(score)
    return Estimate(score, score * median_s / high_s, score * median_s / low_s)
