"""Labelled data: ImageNet-style image folders (seeded class-balanced subsets,
preprocessing), and .npz arrays for networks whose inputs are not images."""

from __future__ import annotations

from pathlib import Path

from pytest_aiotbench.images.arrays import SUFFIX, LabelledArrays, load_arrays
from pytest_aiotbench.images.dataset import Dataset, DatasetError, LabelledImage, load_dataset
from pytest_aiotbench.images.masks import MaskedImages, is_masked_folder, load_masked

#: What --aiot-dataset gives: an image folder (of classes, or with masks) or a file of arrays.
Labelled = Dataset | LabelledArrays


def load_labelled(path: Path, *, labels_file: Path | None, count: int | None,
                  per_class: int, seed: int) -> Labelled:
    """The labelled data at ``path``: a .npz of arrays, a folder of images and masks, else
    an image folder of classes."""
    if Path(path).suffix == SUFFIX:
        return load_arrays(path, count=count, seed=seed)
    if is_masked_folder(path):
        return load_masked(path, count=count, seed=seed)
    return load_dataset(path, labels_file=labels_file, count=count, per_class=per_class,
                        seed=seed)


__all__ = ["Dataset", "DatasetError", "Labelled", "LabelledArrays", "LabelledImage",
           "MaskedImages", "load_arrays", "load_dataset", "load_labelled"]
