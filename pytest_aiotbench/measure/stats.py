"""Summary statistics of the runner's samples (the runner keeps every sample)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from pytest_aiotbench.runner.aiot_runner import (
    median_confidence_bounds,
    quantile_confidence_bounds,
)


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    n: int
    median_s: float
    mean_s: float
    std_s: float
    min_s: float
    max_s: float
    p90_s: float
    p99_s: float
    median_ci_low_s: float
    median_ci_high_s: float
    #: The p90's distribution-free interval (same confidence): the release gate's noise.
    p90_ci_low_s: float
    p90_ci_high_s: float

    @property
    def median_ci_rel_half_width(self) -> float:
        if self.median_s <= 0:
            return math.inf
        return (self.median_ci_high_s - self.median_ci_low_s) / 2 / self.median_s

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["median_ci_rel_half_width"] = self.median_ci_rel_half_width
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyStats:
        return cls(**{field.name: data[field.name] for field in dataclasses.fields(cls)})


def summarize(samples: list[float], confidence: float = 0.95) -> LatencyStats:
    if not samples:
        raise ValueError("no samples to summarize")
    values = np.asarray(samples, dtype=np.float64)
    ordered = np.sort(values)
    low, high = median_confidence_bounds(len(ordered), confidence)
    p90_low, p90_high = quantile_confidence_bounds(len(ordered), 0.9, confidence)
    return LatencyStats(
        n=len(values),
        median_s=float(np.median(values)),
        mean_s=float(values.mean()),
        std_s=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        min_s=float(ordered[0]),
        max_s=float(ordered[-1]),
        p90_s=float(np.percentile(values, 90)),
        p99_s=float(np.percentile(values, 99)),
        median_ci_low_s=float(ordered[low]),
        median_ci_high_s=float(ordered[high]),
        p90_ci_low_s=float(ordered[p90_low]),
        p90_ci_high_s=float(ordered[p90_high]),
    )
