"""Networks: the card type, the registry (the only list), the implementations a network can
come in, the reference networks (torchvision's six, Keras's four of them)."""

from pytest_aiotbench.identity import network_label
from pytest_aiotbench.networks.card import Input, NetworkCard, Preprocessing
from pytest_aiotbench.networks.implementations import IMPLEMENTATIONS
from pytest_aiotbench.networks.registry import (
    UnknownNetworkError,
    cards,
    chosen,
    get,
    implementations_of,
    names,
    register_network,
)

__all__ = ["IMPLEMENTATIONS", "Input", "NetworkCard", "Preprocessing", "UnknownNetworkError",
           "cards", "chosen", "get", "implementations_of", "names", "network_label",
           "register_network"]
