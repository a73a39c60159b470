"""The network card: everything the suite needs to know about one classifier."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pytest_aiotbench.identity import DEFAULT_IMPLEMENTATION, network_label
from pytest_aiotbench.networks import implementations

#: ImageNet normalisation used by torchvision's weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input tensor (as the weights expect it): shorter
    side resized to ``resize``, centre crop ``crop``, pixels scaled to [0, pixel_range] in
    ``channel_order``, then ``(pixel - mean) / std`` per channel, laid out as ``layout``."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "RGB"
    layout: str = "NCHW"
    pixel_range: float = 1.0


#: Keras's own scalings (``keras.applications.imagenet_utils.preprocess_input`` modes), each
#: as the weights of its networks expect them.
KERAS_CAFFE = Preprocessing(mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
                            channel_order="BGR", layout="NHWC", pixel_range=255.0)
KERAS_TF = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), layout="NHWC")
KERAS_TORCH = Preprocessing(layout="NHWC")


@dataclasses.dataclass(frozen=True)
class NetworkCard:
    """One network in one implementation: how to build it, what it takes, what it costs,
    what it should score.

    ``builder(pretrained)`` returns a ``torch.nn.Module`` (implementation ``torch``) or a
    Keras model (``keras``); with ``pretrained=False`` the weights are whatever the
    builder's random initialisation gives under the suite's seed.
    """

    name: str
    builder: Callable[[bool], Any]
    input_shape: tuple[int, ...] = (1, 3, 224, 224)
    preprocessing: Preprocessing = Preprocessing()
    num_classes: int = 1000
    implementation: str = DEFAULT_IMPLEMENTATION
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

    @property
    def label(self) -> str:
        return network_label(self.name, self.implementation)

    def build(self, pretrained: bool) -> Any:
        """The model, checked to be of the card's implementation, ready for inference."""
        return implementations.get(self.implementation).ready(self.name,
                                                              self.builder(pretrained))


class PretrainedWeightsUnavailable(RuntimeError):
    """A network's pretrained weights cannot be loaded here (the message says where to put
    the file)."""
