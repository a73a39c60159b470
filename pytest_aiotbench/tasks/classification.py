"""Classification: the first output holds one score per class; quality is top-1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_aiotbench.tasks.base import CLASSES, Task, register_task


@register_task
class Classification(Task):
    name = "classification"
    agreement_measure = "top-1 agreement with fp32 reference"
    short = "agree-fp32"
    labels = CLASSES

    def agreement(self, got: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                  shapes: Sequence[tuple[int, ...]], within: np.ndarray) -> float:
        return float(np.mean(got[0].argmax(axis=1) == reference[0].argmax(axis=1)))
