"""Any other model: judged by its outputs' error alone; quality is the share of probe
inputs whose every output is within the tolerance of fp32's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_aiotbench.tasks.base import Task, register_task


@register_task
class Generic(Task):
    name = "generic"
    agreement_measure = "share of probes with every output within tolerance of fp32 reference"
    short = "within-tol"

    def agreement(self, got: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                  shapes: Sequence[tuple[int, ...]], within: np.ndarray) -> float:
        return float(np.mean(within))
