"""What a reduced-precision variant buys: its speed-up over the fp32 artifact of the same
network (in the same implementation) and framework on the same device, and what it costs in
accuracy."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.result import WorkloadResult


@dataclasses.dataclass(frozen=True)
class VariantGain:
    result: WorkloadResult
    fp32: WorkloadResult

    @property
    def speedup(self) -> float:
        return self.fp32.seconds_per_image / self.result.seconds_per_image

    @property
    def accuracy_change(self) -> float:
        assert self.result.accuracy is not None and self.fp32.accuracy is not None
        return self.result.accuracy - self.fp32.accuracy


def variant_gains(results: Iterable[WorkloadResult]) -> list[VariantGain]:
    """Every scored non-fp32 result that has a scored fp32 partner, in the given order."""
    scored = [result for result in results if result.scored]
    fp32 = {_fp32_key(r): r for r in scored if r.variant == "fp32"}
    return [VariantGain(r, fp32[_fp32_key(r)]) for r in scored
            if r.variant != "fp32" and _fp32_key(r) in fp32]


def _fp32_key(result: WorkloadResult) -> WorkloadKey:
    """The key of the result's fp32 workload: the same in all but the variant."""
    return dataclasses.replace(result.key, variant="fp32")
