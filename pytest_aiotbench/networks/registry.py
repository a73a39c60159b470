"""The network registry: the only list of networks the suite knows.

A network is registered by a decorator next to its builder, in the package or in a user's
test module or conftest::

    @register_network(input_shape=(1, 3, 32, 32), num_classes=10)
    def tiny_cnn(pretrained: bool = False) -> torch.nn.Module:
        ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pytest_aiotbench.networks.card import NetworkCard, Preprocessing

_REGISTRY: dict[str, NetworkCard] = {}


class UnknownNetworkError(LookupError):
    pass


def register_network(
    name: str | None = None,
    *,
    input_shape: tuple[int, ...] = (1, 3, 224, 224),
    preprocessing: Preprocessing | None = None,
    num_classes: int = 1000,
    published_gmacs: float | None = None,
    reference_top1: float | None = None,
    weights: str = "",
    origin: str | None = None,
    replace: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``builder`` as a network; the name defaults to the function's name.

    The builder takes ``pretrained: bool`` (or nothing, for a network without pretrained
    weights) and returns a ``torch.nn.Module``.
    """

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        takes_flag = len(inspect.signature(builder).parameters) > 0
        network_name = name or builder.__name__
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
            input_shape=tuple(input_shape),
            preprocessing=preprocessing or Preprocessing(
                resize=round(input_shape[-1] * 256 / 224), crop=input_shape[-1]),
            num_classes=num_classes,
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


def add(card: NetworkCard, *, replace: bool = False) -> None:
    existing = _REGISTRY.get(card.name)
    # Re-importing the same module (pytest's rootdir-relative imports, reloads) re-registers
    # the same builder: that is not a clash.
    if existing is not None and not replace and existing.origin != card.origin:
        raise ValueError(
            f"network {card.name!r} is already registered by {existing.origin}; "
            f"pick another name or pass replace=True")
    _REGISTRY[card.name] = card


def get(name: str) -> NetworkCard:
    _load_reference()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNetworkError(
            f"unknown network {name!r}; known networks: {', '.join(names())}") from None


def names() -> list[str]:
    _load_reference()
    return list(_REGISTRY)


def cards() -> list[NetworkCard]:
    _load_reference()
    return list(_REGISTRY.values())


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_reference() -> None:
    # The six are registered by importing their module; deferred so that importing the
    # plugin does not import torch.
    from pytest_aiotbench.networks import reference  # noqa: F401
