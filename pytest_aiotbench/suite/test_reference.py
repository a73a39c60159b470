"""The AIoTBench reference matrix: the six networks x every framework x the chosen devices."""

from pytest_aiotbench.workload import test_workload  # noqa: F401  (collected here)
