"""Are the deployed artifact's answers still those of the fp32 weights?

Random weights give logits from about 1e-9 (MobileNetV2) to 1e12 (InceptionV3), so every
comparison is relative to the reference output's own scale.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Validity:
    probes: int
    max_rel_error: float
    rel_errors: tuple[float, ...]
    top1_agreement: float
    rtol: float

    @property
    def passed(self) -> bool:
        return self.max_rel_error <= self.rtol

    def describe(self) -> str:
        worst = int(np.argmax(self.rel_errors)) if self.rel_errors else 0
        return (f"max relative error {self.max_rel_error:.3g} (probe {worst}) against the fp32 "
                f"reference, tolerance {self.rtol:.3g}; top-1 agreement "
                f"{self.top1_agreement:.0%} over {self.probes} probe inputs")

    def to_json(self) -> dict[str, Any]:
        return {"probes": self.probes, "max_rel_error": self.max_rel_error,
                "rel_errors": list(self.rel_errors), "top1_agreement": self.top1_agreement,
                "rtol": self.rtol, "passed": self.passed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Validity:
        return cls(data["probes"], data["max_rel_error"], tuple(data["rel_errors"]),
                   data["top1_agreement"], data["rtol"])


def compare(outputs: Any, reference: np.ndarray, rtol: float) -> Validity:
    """Relative error per probe: max |out - ref| / max |ref|; and top-1 agreement."""
    got = np.asarray(outputs, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if got.shape != ref.shape:
        return Validity(len(ref), float("inf"), tuple(float("inf") for _ in ref), 0.0, rtol)
    scale = np.abs(ref).max(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    errors = np.abs(got - ref).max(axis=1) / scale
    errors = np.where(np.isfinite(errors), errors, np.inf)
    agreement = float(np.mean(got.argmax(axis=1) == ref.argmax(axis=1)))
    return Validity(len(ref), float(errors.max()), tuple(float(e) for e in errors), agreement,
                    rtol)
