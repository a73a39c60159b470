"""An ImageNet validation-style folder of labelled images.

    DIR/<class folder>/<image>.JPEG

Class index = position of the class folder in sorted order (torchvision's ImageFolder and
ImageNet's own order by wnid), or, with a labels file, whatever it says per file
(lines ``relative/path.JPEG <index>``). Use a labels file when the folder holds only some
of the network's classes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from pathlib import Path

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


class DatasetError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int
    class_name: str


@dataclasses.dataclass(frozen=True)
class Dataset:
    root: Path
    classes: tuple[str, ...]
    images: tuple[LabelledImage, ...]
    #: Images the folder holds in all (before the subset).
    available: int

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for image in self.images:
            digest.update(f"{image.path.relative_to(self.root)}:{image.label};".encode())
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        return (f"{len(self.images)} labelled images of {len({i.label for i in self.images})} "
                f"classes from {self.root} ({self.available} available)")


def load_dataset(root: Path, *, labels_file: Path | None = None, count: int | None = None,
                 per_class: int = 5, seed: int = 0, verify: bool = True) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"--aiot-dataset: folder {root} does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    stray = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if stray and not labels_file:
        raise DatasetError(f"--aiot-dataset: {stray[0]} lies outside a class folder; the "
                           f"layout is {root}/<class>/<image>.JPEG (or give --aiot-labels)")
    by_file: dict[str, int] | None = _read_labels(labels_file, root) if labels_file else None
    images: list[LabelledImage] = []
    for index, folder in enumerate(class_dirs):
        for path in sorted(folder.iterdir()):
            if path.name.startswith("."):
                continue
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f"--aiot-dataset: {path} is not an image "
                                   f"(expected {', '.join(sorted(IMAGE_SUFFIXES))} files)")
            label = index
            if by_file is not None:
                relative = str(path.relative_to(root))
                if relative not in by_file:
                    raise DatasetError(f"--aiot-labels: no label for {relative}")
                label = by_file[relative]
            images.append(LabelledImage(path, label, folder.name))
    if not images:
        raise DatasetError(f"--aiot-dataset: no images in {root} "
                           f"(expected {root}/<class>/<image>.JPEG)")
    chosen = balanced_subset(images, count, per_class, seed) if count else images
    if verify:
        for image in chosen:
            verify_image(image.path)
    return Dataset(root, tuple(d.name for d in class_dirs), tuple(chosen), len(images))


def balanced_subset(images: list[LabelledImage], count: int, per_class: int,
                    seed: int) -> list[LabelledImage]:
    """``count`` images, ``per_class`` from each of ceil(count / per_class) seeded classes
    (the original suite: 100 classes x 5 = 500), spread over fewer classes where fewer exist."""
    rng = random.Random(seed)
    by_class: dict[str, list[LabelledImage]] = {}
    for image in images:
        by_class.setdefault(image.class_name, []).append(image)
    names = sorted(by_class)
    rng.shuffle(names)
    wanted_classes = min(len(names), max(1, math.ceil(count / per_class)))
    names = names[:wanted_classes]
    for name in names:
        rng.shuffle(by_class[name])
    chosen: list[LabelledImage] = []
    depth = 0
    while len(chosen) < count and any(depth < len(by_class[n]) for n in names):
        for name in names:
            if depth < len(by_class[name]) and len(chosen) < count:
                chosen.append(by_class[name][depth])
        depth += 1
    return sorted(chosen, key=lambda i: (i.class_name, i.path.name))


def _read_labels(labels_file: Path, root: Path) -> dict[str, int]:
    labels: dict[str, int] = {}
    try:
        lines = Path(labels_file).read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"--aiot-labels: cannot read {labels_file}: {exc}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetError(f"--aiot-labels: {labels_file}:{number}: expected "
                               f"'relative/path.JPEG <class index>', got {line!r}")
        labels[parts[0]] = int(parts[1])
    return labels


def verify_image(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise DatasetError(f"--aiot-dataset: cannot read image {path}: {exc}") from None
