"""Labelled data that is not images: one .npz holding, for N items, one array per model
input named as the network's card names it (token ids and masks, audio, features), and
``labels``: the class of each item (N,), or a class per pixel (N, H, W). A classifier of any
input is then scored by top-1 and top-5 on the device, as an image classifier is on an
image folder; a segmentation network by mIoU."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from pytest_aiotbench.images.dataset import DatasetError
from pytest_aiotbench.networks.card import NetworkCard

#: The array of the classes, one per item.
LABELS = "labels"
SUFFIX = ".npz"


@dataclasses.dataclass(frozen=True)
class LabelledArrays:
    root: Path
    #: Input name -> (items, *shape[1:]).
    inputs: dict[str, np.ndarray]
    #: (N,) classes, or (N, H, W) label maps.
    labels: np.ndarray
    #: Items the file holds in all (before the subset).
    available: int

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.inputs):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.inputs[name]).tobytes())
        digest.update(np.ascontiguousarray(self.labels).tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        return (f"{len(self.labels)} labelled items of {len(np.unique(self.labels))} classes from "
                f"{self.root} (inputs {', '.join(self.inputs)}; {self.available} available)")

    def rows_for(self, card: NetworkCard) -> tuple[np.ndarray, ...] | None:
        """The card's inputs, in its order, where this file is for the card (None where it
        holds none of them: another network's data); DatasetError where it holds some but
        not in the shape or dtype the card declares."""
        present = [one.name for one in card.inputs if one.name in self.inputs]
        if not present:
            return None
        where = f"--aiot-dataset: {self.root}"
        missing = [one.name for one in card.inputs if one.name not in self.inputs]
        if missing:
            raise DatasetError(f"{where} holds {', '.join(present)} but not "
                               f"{', '.join(missing)} of network {card.name!r}")
        rows = []
        for one in card.inputs:
            values = self.inputs[one.name]
            if values.shape[1:] != one.shape[1:] or str(values.dtype) != one.dtype:
                raise DatasetError(
                    f"{where}: {one.name!r} is {values.dtype} of items shaped "
                    f"{values.shape[1:]}; network {card.name!r} takes {one.dtype} "
                    f"{one.shape[1:]}")
            rows.append(np.ascontiguousarray(values))
        return tuple(rows)


def load_arrays(path: Path, *, count: int | None = None, seed: int = 0) -> LabelledArrays:
    """The file's arrays, or a seeded subset of ``count`` items of them."""
    where = f"--aiot-dataset: {path}"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{where} cannot be read as a .npz: {exc}") from None
    labels = arrays.pop(LABELS, None)
    if labels is None or labels.ndim not in (1, 3) or labels.dtype.kind not in "iu":
        held = ", ".join([*sorted(arrays), *([LABELS] if labels is not None else [])])
        raise DatasetError(f"{where} needs '{LABELS}': integers, one class per item (N,) or "
                           f"one per pixel (N, H, W) (it holds {held or 'nothing'})")
    if not arrays:
        raise DatasetError(f"{where} holds labels but no inputs: save each input under the "
                           "name the network's card gives it")
    uneven = {name: len(values) for name, values in arrays.items() if len(values) != len(labels)}
    if uneven:
        raise DatasetError(f"{where}: {len(labels)} labels, but {uneven} items")
    chosen = np.arange(len(labels))
    if count is not None and count < len(labels):
        chosen = np.sort(np.random.default_rng(seed).choice(len(labels), count, replace=False))
    return LabelledArrays(Path(path), {name: values[chosen] for name, values in arrays.items()},
                          labels[chosen].astype(np.int64), len(labels))
