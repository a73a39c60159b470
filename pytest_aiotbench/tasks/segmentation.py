"""Segmentation: the first output is a map of class scores, (1, classes, H, W); quality is
the share of pixels whose class (the argmax along the class axis) is fp32's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_aiotbench.tasks.base import Task, register_task

#: The class axis of a (batch, classes, height, width) map, as torch's models lay it out.
CLASS_AXIS = 1


@register_task
class Segmentation(Task):
    name = "segmentation"
    agreement_measure = "per-pixel class agreement with fp32 reference"
    short = "pixels-fp32"

    def agreement(self, got: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                  shapes: Sequence[tuple[int, ...]], within: np.ndarray) -> float:
        shape = shapes[0]
        if len(shape) < 2:
            raise ValueError(f"a segmentation network's first output is a map of class "
                             f"scores, (1, classes, H, W); this one is {shape}")
        maps = (len(got[0]), *shape[1:])
        classes = CLASS_AXIS  # the probe axis replaces the batch axis
        return float(np.mean(got[0].reshape(maps).argmax(axis=classes)
                             == reference[0].reshape(maps).argmax(axis=classes)))
