"""VIPS and VOPS (AIoTBench): valid images, and valid operations, per second.

    VIPS = sum over workloads w of  accuracy_w / t_w
    VOPS = sum over workloads w of  accuracy_w * MFLOPs_w / t_w

t_w is the seconds per image (the steady-state inference median, or in the paper protocol
the mean of one end-to-end pass); MFLOPs are millions of multiply-accumulates, the
convention of the original suite (ResNet50: about 4000). A sum over the device's workloads,
not a mean: a device that runs more workloads is not penalised for it, as in the original.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from pytest_aiotbench.measure.result import WorkloadResult


@dataclasses.dataclass(frozen=True)
class WorkloadScore:
    result: WorkloadResult
    vips: float
    vops: float
    vips_share: float


@dataclasses.dataclass(frozen=True)
class DeviceScore:
    device: str
    vips: float
    vops: float
    workloads: tuple[WorkloadScore, ...]
    unscored: tuple[WorkloadResult, ...]

    @property
    def flagged_vips_share(self) -> float:
        """How much of the device's VIPS comes from flagged rows (throttled, busy, unstable)."""
        return sum(row.vips_share for row in self.workloads if row.result.flags)

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "vips": self.vips, "vops": self.vops,
                "scored_workloads": len(self.workloads),
                "unscored_workloads": len(self.unscored)}


def workload_vips(result: WorkloadResult) -> tuple[float, float]:
    assert result.stats is not None and result.accuracy is not None
    seconds = result.seconds_per_image
    vips = result.accuracy / seconds
    vops = vips * (result.macs or 0) / 1e6
    return vips, vops


def score_device(device: str, results: Iterable[WorkloadResult]) -> DeviceScore:
    results = list(results)
    scored = [r for r in results if r.scored]
    figures = [workload_vips(r) for r in scored]
    total_vips = sum(v for v, _ in figures)
    total_vops = sum(o for _, o in figures)
    rows = tuple(WorkloadScore(r, v, o, v / total_vips if total_vips else 0.0)
                 for r, (v, o) in zip(scored, figures, strict=True))
    return DeviceScore(device, total_vips, total_vops, rows,
                       tuple(r for r in results if not r.scored))


def score_all(results: Iterable[WorkloadResult]) -> list[DeviceScore]:
    """Scores per device, ranked by VIPS (best first)."""
    by_device: dict[str, list[WorkloadResult]] = {}
    for result in results:
        by_device.setdefault(result.device, []).append(result)
    scores = [score_device(device, rows) for device, rows in by_device.items()]
    return sorted(scores, key=lambda s: s.vips, reverse=True)


def same_workloads(scores: Iterable[DeviceScore]) -> bool:
    """Whether every device scored the same workloads (VIPS is a sum: compare devices only
    on the same set)."""
    return len({frozenset(w.result.key.label for w in s.workloads) for s in scores}) <= 1
