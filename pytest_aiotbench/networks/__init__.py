"""Networks: the card type, the registry (the only list), the six reference networks."""

from pytest_aiotbench.networks.card import NetworkCard, Preprocessing
from pytest_aiotbench.networks.registry import (
    UnknownNetworkError,
    cards,
    get,
    names,
    register_network,
)

__all__ = ["NetworkCard", "Preprocessing", "UnknownNetworkError", "cards", "get", "names",
           "register_network"]
