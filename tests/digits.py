"""Real labelled images, offline: scikit-learn's handwritten digits (1797 of them, 8x8).

A small CNN is trained on them in seconds; the held-out digits are written as JPEG files in
the ImageNet validation layout (upscaled to 32x32, three channels), so the plugin measures a
real accuracy, on the device, through every framework.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pytest_aiotbench.runner.aiot_runner import preprocess

SIZE = 32
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
SPEC = {"resize": SIZE, "crop": SIZE, "mean": MEAN, "std": STD, "channel_order": "RGB",
        "layout": "NCHW"}


class DigitsCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
        self.classifier = torch.nn.Linear(32 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def write_jpegs(images: np.ndarray, labels: np.ndarray, root: Path, prefix: str) -> list[Path]:
    from PIL import Image

    paths = []
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / f"{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        gray = Image.fromarray((pixels / 16.0 * 255).astype(np.uint8), mode="L")
        rgb = gray.resize((SIZE, SIZE), Image.BILINEAR).convert("RGB")
        path = folder / f"{prefix}_{index:04d}.JPEG"
        rgb.save(path, quality=95)
        paths.append(path)
    return paths


def make_digits(root: Path, held_out: int = 400, seed: int = 0) -> tuple[Path, Path, float]:
    """Write train/ and val/ JPEG folders, train the CNN on train/ through the suite's own
    preprocessing, save its weights; return (val folder, weights file, host top-1 on val)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.images))
    val_idx, train_idx = order[:held_out], order[held_out:]
    train_paths = write_jpegs(digits.images[train_idx], digits.target[train_idx],
                              root / "train", "train")
    val_paths = write_jpegs(digits.images[val_idx], digits.target[val_idx], root / "val", "val")

    def tensors(paths: list[Path]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([preprocess(str(p), SPEC) for p in paths]))

    x_train, y_train = tensors(train_paths), torch.from_numpy(digits.target[train_idx])
    x_val, y_val = tensors(val_paths), torch.from_numpy(digits.target[val_idx])
    torch.manual_seed(seed)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in range(8):
        model.train()
        permutation = torch.randperm(len(x_train))
        for start in range(0, len(x_train), 64):
            batch = permutation[start:start + 64]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        top1 = float((model(x_val).argmax(1) == y_val).float().mean())
    weights = root / "digits_cnn.pt"
    torch.save(model.state_dict(), weights)
    return root / "val", weights, top1


def network_module(weights: Path) -> str:
    """A user's test module registering the trained network (as conftest_examples shows)."""
    import inspect

    return f'''
import torch
from pytest_aiotbench import Preprocessing, register_network, test_workload  # noqa: F401

SIZE, MEAN, STD = {SIZE}, {MEAN}, {STD}


{inspect.getsource(DigitsCNN)}

@register_network(input_shape=(1, 3, SIZE, SIZE), num_classes=10,
                  preprocessing=Preprocessing(resize=SIZE, crop=SIZE, mean=MEAN, std=STD))
def digits_cnn():
    """A small CNN trained on scikit-learn's digits."""
    model = DigitsCNN()
    model.load_state_dict(torch.load({str(weights)!r}, map_location="cpu"))
    return model
'''
