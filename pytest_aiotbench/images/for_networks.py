"""The session's labelled data as each network takes it: which networks it scores (a
classifier and class labels, a segmenter and label maps, inputs the data holds), the items
as the network's inputs (images preprocessed as the card says, or the arrays), a few of them
for calibration, the labels, and the masks cropped as their images were."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pytest_aiotbench import tasks
from pytest_aiotbench.images import Dataset, DatasetError, Labelled, LabelledArrays, MaskedImages
from pytest_aiotbench.networks.card import NetworkCard
from pytest_aiotbench.runner.aiot_runner import preprocess, preprocess_mask
from pytest_aiotbench.tasks.base import CLASSES, MAPS

#: Labelled items the int8 variants are calibrated on.
CALIBRATION_ITEMS = 16

#: One input's items in a file: (input name, dtype, .npy path).
ItemsFile = tuple[str, str, Path]


def preprocessing_spec(card: NetworkCard) -> dict[str, Any]:
    """The card's preprocessing as ``preprocess`` and the Python runner take it."""
    return dataclasses.asdict(card.preprocessing)


class LabelledForNetworks:
    def __init__(self, dataset: Callable[[], Labelled | None], workdir: Path):
        self._dataset = dataset
        self._workdir = workdir
        self._calibration: dict[str, tuple[np.ndarray, ...] | None] = {}
        self._files: dict[str, tuple[ItemsFile, ...]] = {}
        self._masks: dict[str, list[np.ndarray]] = {}

    @property
    def dataset(self) -> Labelled | None:
        """The data --aiot-dataset names (read on first use; raises DatasetError)."""
        return self._dataset()

    def rows(self, card: NetworkCard) -> Callable[[], tuple[np.ndarray, ...]] | None:
        """What reads the labelled items as this network's inputs, where the data scores it
        (a classifier and class labels, a segmenter and label maps, on images or on arrays
        named as its inputs); None where its quality is its task's agreement with fp32.
        Raises DatasetError where the arrays are for it but do not fit it."""
        dataset = self.dataset
        if dataset is None or tasks.get(card.task).labels != _labels_kind(dataset):
            return None
        if isinstance(dataset, LabelledArrays):
            rows = dataset.rows_for(card)
            return None if rows is None else (lambda: rows)
        if not card.takes_images:
            return None
        spec = preprocessing_spec(card)
        return lambda: (np.concatenate([preprocess(str(image.path), spec)
                                        for image in dataset.images]),)

    def check(self, card: NetworkCard) -> None:
        """DatasetError for data this network cannot be scored on, before it is built."""
        if self.rows(card) is None:
            return
        dataset = self.dataset
        if isinstance(dataset, MaskedImages):
            return
        if isinstance(dataset, Dataset):
            for image in dataset.images:
                if image.label >= card.num_classes:
                    raise DatasetError(
                        f"class {image.class_name!r} of {dataset.root} has index "
                        f"{image.label}, but {card.name!r} outputs {card.num_classes} classes; "
                        "give a labels file (--aiot-labels) or a dataset of this network's "
                        "classes")
        elif (isinstance(dataset, LabelledArrays) and dataset.labels.ndim == 1
              and dataset.labels.max() >= card.num_classes):
            raise DatasetError(f"{dataset.root} labels an item {dataset.labels.max()}, but "
                               f"{card.name!r} outputs {card.num_classes} classes")

    def files(self, card: NetworkCard,
              rows: Callable[[], tuple[np.ndarray, ...]]) -> tuple[ItemsFile, ...]:
        """The items as one .npy per input (written once per network)."""
        if card.label not in self._files:
            files = []
            for one, values in zip(card.inputs, rows(), strict=True):
                path = self._workdir / f"{card.label}-labelled-{one.name}.npy"
                np.save(path, values)
                files.append((one.name, one.dtype, path))
            self._files[card.label] = tuple(files)
        return self._files[card.label]

    def calibration(self, card: NetworkCard) -> tuple[np.ndarray, ...] | None:
        """A few labelled items, as this network's inputs (None: none fit; use the probes)."""
        dataset = self.dataset
        if dataset is None:
            return None
        if card.label not in self._calibration:
            chosen: tuple[np.ndarray, ...] | None = None
            if isinstance(dataset, LabelledArrays):
                rows = dataset.rows_for(card)
                if rows is not None:
                    step = max(1, len(dataset.labels) // CALIBRATION_ITEMS)
                    chosen = tuple(one[::step][:CALIBRATION_ITEMS] for one in rows)
            elif card.takes_images:
                step = max(1, len(dataset.images) // CALIBRATION_ITEMS)
                spec = preprocessing_spec(card)
                chosen = (np.concatenate([preprocess(str(image.path), spec) for image in
                                          dataset.images[::step][:CALIBRATION_ITEMS]]),)
            self._calibration[card.label] = chosen
        return self._calibration[card.label]

    def labels(self) -> list[int]:
        """Each item's class."""
        dataset = self.dataset
        if isinstance(dataset, LabelledArrays):
            return [int(label) for label in dataset.labels]
        assert dataset is not None
        return [image.label for image in dataset.images]

    def masks(self, card: NetworkCard, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Each item's label map, covering what the network's class map of ``shape``
        covers: a folder's masks cropped and resized as their images are, then to the
        map's height and width (read once per network)."""
        if card.label not in self._masks:
            dataset = self.dataset
            if isinstance(dataset, LabelledArrays):
                masks = list(dataset.labels)
            else:
                assert isinstance(dataset, MaskedImages)
                spec = preprocessing_spec(card)
                masks = [preprocess_mask(str(path), spec) for path in dataset.masks]
            height, width = shape[-2:]
            self._masks[card.label] = [_nearest(mask, height, width) for mask in masks]
        return self._masks[card.label]


def _labels_kind(dataset: Labelled) -> str:
    """What the data labels: a class per item, or a class per pixel."""
    if isinstance(dataset, MaskedImages) or (isinstance(dataset, LabelledArrays)
                                             and dataset.labels.ndim == 3):
        return MAPS
    return CLASSES


def _nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``mask`` at ``height`` x ``width``, by nearest neighbour (the map's own size where it
    is already)."""
    if mask.shape == (height, width):
        return mask
    rows = (np.arange(height) * mask.shape[0] // height)[:, None]
    columns = (np.arange(width) * mask.shape[1] // width)[None, :]
    return mask[rows, columns]
