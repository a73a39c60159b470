"""Images with label masks, for segmentation networks, as Pascal VOC lays them out:

    DIR/images/<name>.jpg      (JPEGImages)
    DIR/masks/<name>.png       (SegmentationClass: a class index per pixel, 255 not scored)

Each image keeps its mask's name; the mask is cropped and resized as its image is
(``preprocess_mask``), so the device's class map and the mask cover the same pixels."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from pytest_aiotbench.images.dataset import (
    IMAGE_SUFFIXES,
    Dataset,
    DatasetError,
    LabelledImage,
    verify_image,
)

IMAGES, MASKS = "images", "masks"
MASK_SUFFIX = ".png"


@dataclasses.dataclass(frozen=True)
class MaskedImages(Dataset):
    #: Each image's mask, in the images' order.
    masks: tuple[Path, ...] = ()


def is_masked_folder(root: Path) -> bool:
    return (Path(root) / IMAGES).is_dir() and (Path(root) / MASKS).is_dir()


def load_masked(root: Path, *, count: int | None = None, seed: int = 0,
                verify: bool = True) -> MaskedImages:
    root = Path(root)
    where = f"--aiot-dataset: {root}"
    images = sorted(path for path in (root / IMAGES).iterdir()
                    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{where}/{IMAGES} holds no images")
    pairs = []
    for image in images:
        mask = root / MASKS / f"{image.stem}{MASK_SUFFIX}"
        if not mask.is_file():
            raise DatasetError(f"{where}: {image.name} has no mask {MASKS}/{mask.name}")
        pairs.append((image, mask))
    if count is not None and count < len(pairs):
        pairs = sorted(random.Random(seed).sample(pairs, count))
    if verify:
        for image, mask in pairs:
            verify_image(image)
            verify_image(mask)
    return MaskedImages(root, (), tuple(LabelledImage(image, -1, "") for image, _ in pairs),
                        len(images), tuple(mask for _, mask in pairs))
