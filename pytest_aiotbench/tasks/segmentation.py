"""Segmentation: the first output is a map of class scores, (1, classes, H, W); quality is
the share of pixels whose class (the argmax along the class axis) is fp32's, or, where label
masks are given, the mean intersection over union of the classes (mIoU)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_aiotbench.tasks.base import MAPS, Task, register_task

#: The class axis of a (batch, classes, height, width) map, as torch's models lay it out.
CLASS_AXIS = 1
#: A mask's value for pixels no class is scored on (borders, "void": Pascal VOC's 255).
IGNORE = 255


@register_task
class Segmentation(Task):
    name = "segmentation"
    agreement_measure = "per-pixel class agreement with fp32 reference"
    short = "pixels-fp32"
    labels = MAPS
    class_map_axis = CLASS_AXIS

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


def mean_iou(predicted: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """The mean over classes of |predicted ∩ labelled| / |predicted ∪ labelled|, the counts
    summed over every item (as Pascal VOC and Cityscapes score), over the classes that occur
    in the masks or the predictions; pixels labelled IGNORE count for nothing."""
    intersection: dict[int, int] = {}
    union: dict[int, int] = {}
    for got, want in zip(predicted, masks, strict=True):
        if got.shape != want.shape:
            raise ValueError(f"a class map of {got.shape} against a mask of {want.shape}")
        scored = want != IGNORE
        got, want = got[scored], want[scored]
        for label in np.union1d(np.unique(got), np.unique(want)):
            hit, truth = got == label, want == label
            intersection[int(label)] = intersection.get(int(label), 0) + int((hit & truth).sum())
            union[int(label)] = union.get(int(label), 0) + int((hit | truth).sum())
    return float(np.mean([intersection[label] / union[label] for label in union])) \
        if union else 0.0
