"""The network registry: the only list of networks the suite knows.

A network is registered by a decorator next to its builder, in the package or in a user's
test module or conftest::

    @register_network(input_shape=(1, 3, 32, 32), num_classes=10)
    def tiny_cnn(pretrained: bool = False) -> torch.nn.Module:
        ...

    @register_network(inputs=[Input("input_ids", (1, 32), "int64", high=30522),
                              Input("attention_mask", (1, 32), "int64", high=2)],
                      num_classes=2)
    def text_classifier() -> torch.nn.Module:
        ...

A network may come in several implementations (the reference ResNet50 in torch and in
Keras); each is its own card under the network's one name. The first registered is the
network's primary implementation, the one that runs when no implementation is chosen.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from pytest_aiotbench.identity import DEFAULT_IMPLEMENTATION
from pytest_aiotbench.networks import implementations
from pytest_aiotbench.networks.card import Input, NetworkCard, Preprocessing, image_input

#: name -> implementation -> card, in registration order.
_REGISTRY: dict[str, dict[str, NetworkCard]] = {}


class UnknownNetworkError(LookupError):
    pass


def register_network(
    name: str | None = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    inputs: Sequence[Input] | None = None,
    task: str = "classification",
    preprocessing: Preprocessing | None = None,
    num_classes: int = 1000,
    published_gmacs: float | None = None,
    reference_top1: float | None = None,
    weights: str = "",
    origin: str | None = None,
    implementation: str | None = None,
    replace: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``builder`` as a network; the name defaults to the function's name.

    The builder takes ``pretrained: bool`` (or nothing, for a network without pretrained
    weights) and returns a ``torch.nn.Module`` or, with ``implementation="keras"`` (or a
    ``-> keras.Model`` return annotation), a Keras model. The input shape defaults to a
    224x224 RGB image in the implementation's layout: ``(1, 3, 224, 224)`` for torch,
    ``(1, 224, 224, 3)`` (NHWC) for Keras; the preprocessing to torchvision's scaling in
    that layout.

    ``inputs`` declares the model's inputs instead, in the order its forward takes them
    (``Input(name, shape, dtype, low=, high=)``: token ids, masks, audio, several images);
    ``task`` is what the network is for (``pytest_aiotbench.tasks``: classification,
    segmentation, generic), which says how its quality is measured.
    """
    from pytest_aiotbench import tasks

    tasks.get(task)  # an unknown task fails at registration, naming the known ones

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        takes_flag = len(inspect.signature(builder).parameters) > 0
        network_name = name or builder.__name__
        kind = implementations.get(implementation or implementations.from_annotation(builder)
                                   or DEFAULT_IMPLEMENTATION)
        declared = _declared_inputs(network_name, input_shape, inputs, kind)
        shape = declared[0].shape
        side = shape[2] if kind.layout == "NHWC" and len(shape) > 2 else shape[-1]
        if not takes_flag:
            def call(pretrained: bool) -> Any:
                if pretrained:
                    raise ValueError(f"network {network_name!r} has no pretrained weights; "
                                     "run it with --aiot-weights=random")
                return builder()
        else:
            call = builder
        card = NetworkCard(
            name=network_name,
            builder=call,
            inputs=declared,
            task=task,
            preprocessing=preprocessing or Preprocessing(
                resize=round(side * 256 / 224), crop=side, layout=kind.layout),
            num_classes=num_classes,
            implementation=kind.name,
            published_gmacs=published_gmacs,
            reference_top1=reference_top1,
            weights=weights,
            has_pretrained=takes_flag and bool(weights),
            origin=origin or builder.__module__,
            description=(inspect.getdoc(builder) or "").split("\n")[0],
        )
        add(card, replace=replace)
        return builder

    return decorate


def _declared_inputs(network: str, input_shape: tuple[int, ...] | None,
                     inputs: Sequence[Input] | None,
                     kind: implementations.Implementation) -> tuple[Input, ...]:
    """The card's inputs: as declared, or the short form's one image."""
    if inputs is None:
        return image_input(tuple(input_shape) if input_shape else (
            (1, 3, 224, 224) if kind.layout == "NCHW" else (1, 224, 224, 3)))
    where = f"network {network!r}"
    if input_shape is not None:
        raise ValueError(f"{where}: give inputs= or input_shape=, not both (input_shape= is "
                         "the short form of one float image input)")
    declared = tuple(inputs)
    if not declared or not all(isinstance(one, Input) for one in declared):
        raise ValueError(f"{where}: inputs= takes a list of pytest_aiotbench.Input, one per "
                         "argument of the model's forward")
    names = [one.name for one in declared]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: input names must differ: {names}")
    return declared


def add(card: NetworkCard, *, replace: bool = False) -> None:
    existing = _REGISTRY.get(card.name, {}).get(card.implementation)
    # Re-importing the same module (pytest's rootdir-relative imports, reloads) re-registers
    # the same builder: that is not a clash.
    if existing is not None and not replace and existing.origin != card.origin:
        raise ValueError(
            f"network {card.name!r} ({card.implementation}) is already registered by "
            f"{existing.origin}; pick another name or pass replace=True")
    _REGISTRY.setdefault(card.name, {})[card.implementation] = card


def get(name: str, implementation: str | None = None) -> NetworkCard:
    """The network's card in ``implementation`` (None: its primary implementation)."""
    _load_reference()
    try:
        found = _REGISTRY[name]
    except KeyError:
        raise UnknownNetworkError(
            f"unknown network {name!r}; known networks: {', '.join(names())}") from None
    if implementation is None:
        return next(iter(found.values()))
    try:
        return found[implementation]
    except KeyError:
        raise UnknownNetworkError(
            f"network {name!r} has no {implementation} implementation (it has: "
            f"{', '.join(found)})") from None


def names() -> list[str]:
    _load_reference()
    return list(_REGISTRY)


def cards() -> list[NetworkCard]:
    """Every network in every implementation."""
    _load_reference()
    return [card for by_implementation in _REGISTRY.values()
            for card in by_implementation.values()]


def chosen(card: NetworkCard, wanted: tuple[str, ...]) -> bool:
    """Whether the card runs when ``wanted`` implementations are asked for (empty: each
    network in its primary implementation)."""
    if wanted:
        return card.implementation in wanted
    return next(iter(_REGISTRY[card.name].values())) is card


def implementations_of(name: str) -> list[str]:
    _load_reference()
    return list(_REGISTRY.get(name, {}))


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


_reference_loaded = False


def _load_reference() -> None:
    """Register the reference networks on first need. Their modules import no framework
    (the builders import torchvision or Keras when called), so listing them is cheap too.
    torchvision's first: a reference network's primary implementation is torch."""
    global _reference_loaded
    if _reference_loaded:
        return
    from pytest_aiotbench.networks import keras_applications, reference

    for card in (*reference.REFERENCE_NETWORKS, *keras_applications.KERAS_NETWORKS):
        add(card, replace=True)
    _reference_loaded = True
