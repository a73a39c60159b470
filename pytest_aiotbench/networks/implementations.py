"""The implementations a network can come in, and what the suite does with a model of each:
seed its random weights, check and ready what a builder returned, answer the probes in fp32,
count its multiply-accumulates, fingerprint it for the artifact cache. ``IMPLEMENTATIONS``
is the only list of them."""

from __future__ import annotations

import abc
import hashlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_aiotbench.networks import flops
from pytest_aiotbench.runner.aiot_runner import flattened


class Implementation(abc.ABC):
    #: As options, test ids and results name it.
    name: str = ""
    #: What a builder of this implementation returns, in words (for errors).
    returns: str = ""
    #: The input layout its models take by convention.
    layout: str = "NCHW"

    @abc.abstractmethod
    def owns(self, model: Any) -> bool:
        """Whether ``model`` is of this implementation."""

    @abc.abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the random initialisation of the weights a builder makes next."""

    @abc.abstractmethod
    def outputs(self, model: Any, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The model's fp32 answer to one batch of its inputs (in forward order): every
        output it returns, by name (``named_outputs``), as numpy arrays."""

    @abc.abstractmethod
    def macs(self, model: Any, inputs: Sequence[np.ndarray]) -> int:
        """Multiply-accumulates of one forward pass on these inputs (see ``flops``)."""

    @abc.abstractmethod
    def fingerprint(self, model: Any) -> str:
        """sha256 of what makes the model compute what it computes (part of the cache key)."""

    def example(self, inputs: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """The inputs the exporters trace the model with, in forward order."""
        return tuple(inputs)

    def ready(self, network: str, model: Any) -> Any:
        """The builder's model of ``network`` in inference mode; a clear error for any
        other kind."""
        if self.owns(model):
            return self._inference_mode(model)
        other = next((i for i in IMPLEMENTATIONS.values() if i.owns(model)), None)
        if other is None:
            kinds = " nor ".join(i.returns for i in IMPLEMENTATIONS.values())
            raise TypeError(f"the builder of network {network!r} returned "
                            f"{type(model).__module__}.{type(model).__name__}, neither {kinds}")
        raise TypeError(f"the builder of network {network!r} returned {other.returns}, but "
                        f"the network is registered as {self.name}: register it with "
                        f"@register_network(implementation={other.name!r}) (or annotate the "
                        f"builder's return type)")

    def _inference_mode(self, model: Any) -> Any:
        return model


class Torch(Implementation):
    name = "torch"
    returns = "a torch.nn.Module"

    def owns(self, model: Any) -> bool:
        import torch

        return isinstance(model, torch.nn.Module)

    def seed(self, seed: int) -> None:
        import torch

        torch.manual_seed(seed)

    def _inference_mode(self, model: Any) -> Any:
        return model.eval()

    def example(self, inputs: Sequence[np.ndarray]) -> tuple[Any, ...]:
        import torch

        return tuple(torch.from_numpy(batch.copy()) for batch in inputs)

    def outputs(self, model: Any, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            answer = model(*self.example(inputs))
        return {name: tensor.numpy() for name, tensor in named_outputs(answer).items()}

    def macs(self, model: Any, inputs: Sequence[np.ndarray]) -> int:
        return flops.torch_macs(model, self.example(inputs))

    def fingerprint(self, model: Any) -> str:
        import torch

        digest = hashlib.sha256()
        for name, tensor in model.state_dict().items():
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
            # Raw bytes of any dtype (bfloat16 and bool included): numpy cannot take them all.
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()


class Keras(Implementation):
    name = "keras"
    returns = "a Keras model"
    layout = "NHWC"

    def owns(self, model: Any) -> bool:
        keras = sys.modules.get("keras")  # not imported: the model cannot be a Keras one
        return keras is not None and isinstance(model, keras.Model)

    def seed(self, seed: int) -> None:
        import keras

        keras.utils.set_random_seed(seed)

    def outputs(self, model: Any, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        answer = _in_tensorflow_order(model(keras_call(inputs), training=False))
        return {name: _numpy(tensor) for name, tensor in named_outputs(answer).items()}

    def macs(self, model: Any, inputs: Sequence[np.ndarray]) -> int:
        return flops.keras_macs(lambda *batch: model(keras_call(batch), training=False),
                                keras_specs(inputs))

    def fingerprint(self, model: Any) -> str:
        digest = hashlib.sha256()
        digest.update(_architecture(model).encode())
        for weight in model.weights:
            values = _numpy(weight)
            digest.update(f"{values.dtype}:{values.shape};".encode())
            digest.update(np.ascontiguousarray(values).tobytes())
        return digest.hexdigest()


def keras_call(inputs: Sequence[Any]) -> Any:
    """What a Keras model is called with: its one input, or the list of its inputs in order
    (as a functional model with several ``keras.Input`` takes them)."""
    return inputs[0] if len(inputs) == 1 else list(inputs)


def keras_input_names(count: int) -> list[str]:
    """What the converters call a Keras network's inputs: ``input`` for one, ``input_<i>``
    for several (the place in the name puts a TFLite file's inputs back in order)."""
    return ["input"] if count == 1 else [f"input_{index}" for index in range(count)]


def keras_specs(inputs: Sequence[np.ndarray]) -> list[Any]:
    """A TensorSpec per input: its shape, dtype and name."""
    import tensorflow as tf

    return [tf.TensorSpec(one.shape, tf.as_dtype(one.dtype), name=name)
            for one, name in zip(inputs, keras_input_names(len(inputs)), strict=True)]


def _in_tensorflow_order(answer: Any) -> Any:
    """A Keras answer with its dicts' keys sorted: TensorFlow flattens a model's outputs so
    (``tf.nest``), and its converters write them in that order (the TFLite export puts its
    graph's outputs back in it)."""
    if isinstance(answer, dict):
        return {key: _in_tensorflow_order(answer[key]) for key in sorted(answer)}
    if isinstance(answer, (list, tuple)):
        return [_in_tensorflow_order(one) for one in answer]
    return answer


def named_outputs(answer: Any) -> dict[str, Any]:
    """A model's answer as named tensors, in the order the exporters flatten it (torch's
    pytree: a tuple or list in order, a dict in its insertion order): a lone tensor is
    ``output``, a tuple's elements ``output_<i>``, a dict's values their keys; nested ones
    join their names with dots. The runner names a TorchScript answer the same way."""
    return dict(flattened(answer))


def _numpy(tensor: Any) -> np.ndarray:
    import keras

    with warnings.catch_warnings():  # Keras's own numpy 2 deprecation, once per tensor
        warnings.simplefilter("ignore", DeprecationWarning)
        return keras.ops.convert_to_numpy(tensor)


def _architecture(model: Any) -> str:
    """The model's configuration with its layers' names replaced by their positions: Keras
    numbers unnamed layers per process (``conv2d_7``), so the same model built after another
    one would otherwise fingerprint differently and miss the cache."""
    layers = list(model._flatten_layers())
    try:
        text = model.to_json()
    except Exception:  # a subclassed model without get_config: its layers' classes in order
        return repr([type(layer).__name__ for layer in layers])
    position = {layer.name: index for index, layer in enumerate(layers)}
    for name in sorted(position, key=len, reverse=True):
        text = text.replace(f'"{name}"', f'"#{position[name]}"')
    return text


IMPLEMENTATIONS: dict[str, Implementation] = {kind.name: kind for kind in (Torch(), Keras())}


class UnknownImplementationError(LookupError):
    pass


def get(name: str) -> Implementation:
    try:
        return IMPLEMENTATIONS[name]
    except KeyError:
        raise UnknownImplementationError(
            f"unknown implementation {name!r}; known: {', '.join(IMPLEMENTATIONS)}") from None


def from_annotation(builder: Any) -> str | None:
    """The implementation a builder's return annotation names (``-> keras.Model``), if any."""
    annotation = getattr(builder, "__annotations__", {}).get("return")
    if annotation is None:
        return None
    text = annotation if isinstance(annotation, str) else (
        f"{getattr(annotation, '__module__', '')}.{getattr(annotation, '__qualname__', '')}")
    if "keras" in text.lower():
        return "keras"
    if "torch" in text.lower():
        return "torch"
    return None
