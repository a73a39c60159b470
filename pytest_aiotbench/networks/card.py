"""The network card: everything the suite needs to know about one network: how to build
it, what it takes (its inputs), what it is for (its task), what it costs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

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

#: The element types an input may have (the runner protocol's enum ``dtype`` names the same).
DTYPES = ("float32", "float16", "int64", "int32", "uint8", "bool")
INTEGER_DTYPES = ("int64", "int32", "uint8")
#: The one input of the short form (``input_shape=``): a preprocessed image.
DEFAULT_INPUT_NAME = "input"


@dataclasses.dataclass(frozen=True)
class Input:
    """One model input, as the model's forward takes it: name, shape (batch first), dtype,
    and the range its probes are drawn from: integers uniformly in ``[low, high)`` (token ids
    below the vocabulary size, a mask's 0 and 1), floats uniformly in ``[low, high)``, or,
    for a float input given no range, pixels preprocessed as the card's images are."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(size) for size in self.shape))
        where = f"input {self.name!r}"
        if not self.name or not str(self.name).isidentifier():
            raise ValueError(f"{where}: a name must be a Python identifier (the forward's "
                             "argument name)")
        if self.dtype not in DTYPES:
            raise ValueError(f"{where}: unknown dtype {self.dtype!r}; known: "
                             f"{', '.join(DTYPES)}")
        if not self.shape or any(size < 1 for size in self.shape):
            raise ValueError(f"{where}: shape {self.shape} must be positive sizes, batch "
                             "first")
        if self.dtype in INTEGER_DTYPES and self.high is None and self.dtype != "uint8":
            raise ValueError(f"{where}: an {self.dtype} input needs high= (ids are drawn from "
                             "[low, high): the vocabulary size for token ids)")
        low, high = self.range
        if low is not None and high is not None and not low < high:
            raise ValueError(f"{where}: low ({low}) must be below high ({high})")

    @property
    def range(self) -> tuple[float | None, float | None]:
        """The probes' ``[low, high)`` (None, None: preprocessed pixels; bool: 0 and 1)."""
        if self.dtype == "bool":
            return 0, 2
        if self.dtype in INTEGER_DTYPES:
            return (self.low if self.low is not None else 0,
                    self.high if self.high is not None else 256)
        if self.low is None and self.high is None:
            return None, None
        return (self.low if self.low is not None else 0.0,
                self.high if self.high is not None else 1.0)

    def draw(self, rng: np.random.Generator, count: int, pixels: Preprocessing) -> np.ndarray:
        """``count`` probes of this input, ``(count, *shape[1:])`` of its dtype."""
        shape = (count, *self.shape[1:])
        low, high = self.range
        if self.dtype == "bool" or self.dtype in INTEGER_DTYPES:
            return rng.integers(int(low), int(high), shape).astype(self.dtype)
        if low is None:
            return image_like(rng, shape, pixels).astype(self.dtype)
        return (low + rng.random(shape) * (high - low)).astype(self.dtype)


def image_like(rng: np.random.Generator, shape: tuple[int, ...],
               spec: Preprocessing) -> np.ndarray:
    """Uniform pixels, scaled and normalised as ``spec`` does, along its channel axis."""
    pixels = rng.random(shape, dtype=np.float32) * np.float32(spec.pixel_range)
    axis = 1 if spec.layout == "NCHW" else len(shape) - 1
    if len(shape) == 4 and shape[axis] == len(spec.mean):
        along = [1, 1, 1, 1]
        along[axis] = -1
        mean = np.asarray(spec.mean, np.float32).reshape(along)
        std = np.asarray(spec.std, np.float32).reshape(along)
        pixels = (pixels - mean) / std
    return np.ascontiguousarray(pixels, dtype=np.float32)


def image_input(shape: tuple[int, ...]) -> tuple[Input, ...]:
    """The short form's inputs: one preprocessed float image of ``shape``."""
    return (Input(DEFAULT_INPUT_NAME, tuple(shape)),)


@dataclasses.dataclass(frozen=True)
class NetworkCard:
    """One network in one implementation: how to build it, what it takes, what it is for,
    what it costs, what it should score.

    ``builder(pretrained)`` returns a ``torch.nn.Module`` (implementation ``torch``) or a
    Keras model (``keras``); with ``pretrained=False`` the weights are whatever the
    builder's random initialisation gives under the suite's seed.
    """

    name: str
    builder: Callable[[bool], Any]
    #: In the order the model's forward takes them.
    inputs: tuple[Input, ...] = image_input((1, 3, 224, 224))
    preprocessing: Preprocessing = Preprocessing()
    num_classes: int = 1000
    #: What the network is for: the entry of the task registry that scores it.
    task: str = "classification"
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

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The first input's shape (the image's, for the short form)."""
        return self.inputs[0].shape

    @property
    def takes_images(self) -> bool:
        """Whether one inference is one image: a single float input of rank 4."""
        return (len(self.inputs) == 1 and self.inputs[0].dtype == "float32"
                and self.inputs[0].range == (None, None) and len(self.input_shape) == 4)

    @property
    def short_form(self) -> bool:
        """Whether the inputs are what ``input_shape=`` alone makes."""
        return self.inputs == image_input(self.input_shape)

    def build(self, pretrained: bool) -> Any:
        """The model, checked to be of the card's implementation, ready for inference."""
        return implementations.get(self.implementation).ready(self.name,
                                                              self.builder(pretrained))


class PretrainedWeightsUnavailable(RuntimeError):
    """A network's pretrained weights cannot be loaded here (the message says where to put
    the file)."""


@dataclasses.dataclass(frozen=True)
class Output:
    """One model output as the fp32 model answers: its name (``output`` for a lone tensor,
    ``output_<i>`` in a tuple, the key in a dict), shape (batch first) and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str
