"""Labelled images: ImageNet-style folders, seeded class-balanced subsets, preprocessing."""

from pytest_aiotbench.images.dataset import Dataset, DatasetError, LabelledImage, load_dataset

__all__ = ["Dataset", "DatasetError", "LabelledImage", "load_dataset"]
