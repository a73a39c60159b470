"""pytest-aiotbench: benchmark on-device inference (AIoTBench's classifiers, and any model)."""

from pytest_aiotbench.networks import torchvision_compat

# Before any test module imports torchvision (networks/torchvision_compat.py says why).
torchvision_compat.install()

from pytest_aiotbench.frameworks import register_framework  # noqa: E402
from pytest_aiotbench.networks import (  # noqa: E402
    Input,
    NetworkCard,
    Preprocessing,
    register_network,
)
from pytest_aiotbench.workload import Workload, test_workload  # noqa: E402

__all__ = ["Input", "NetworkCard", "Preprocessing", "Workload", "register_framework",
           "register_network", "test_workload"]
__version__ = "0.1.0"
