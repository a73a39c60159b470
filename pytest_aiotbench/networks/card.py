"""The network card: everything the suite needs to know about one classifier."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

#: ImageNet normalisation used by torchvision's weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input tensor (as the weights expect it)."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "RGB"
    layout: str = "NCHW"


@dataclasses.dataclass(frozen=True)
class NetworkCard:
    """One network: how to build it, what it takes, what it costs, what it should score.

    ``builder(pretrained)`` returns a ``torch.nn.Module`` in eval mode or not (the suite puts
    it in eval mode); with ``pretrained=False`` the weights are whatever the builder's random
    initialisation gives under the suite's seed.
    """

    name: str
    builder: Callable[[bool], Any]
    input_shape: tuple[int, ...] = (1, 3, 224, 224)
    preprocessing: Preprocessing = Preprocessing()
    num_classes: int = 1000
    #: Published multiply-accumulates per image, in G, where known (the count itself is
    #: always taken from the model).
    published_gmacs: float | None = None
    #: Published ImageNet top-1 of the pretrained weights, as a fraction.
    reference_top1: float | None = None
    #: What ``pretrained=True`` loads, in words (for errors and the report).
    weights: str = ""
    has_pretrained: bool = False
    #: ``reference`` for the AIoTBench six, else the module that registered the network.
    origin: str = "reference"
    description: str = ""

    def build(self, pretrained: bool) -> Any:
        model = self.builder(pretrained)
        return model.eval()
