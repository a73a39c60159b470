"""pytest-aiotbench: benchmark on-device inference of image classifiers (AIoTBench)."""

from pytest_aiotbench.frameworks import register_framework
from pytest_aiotbench.networks import NetworkCard, Preprocessing, register_network
from pytest_aiotbench.workload import Workload, test_workload

__all__ = ["NetworkCard", "Preprocessing", "Workload", "register_framework",
           "register_network", "test_workload"]
__version__ = "0.1.0"
