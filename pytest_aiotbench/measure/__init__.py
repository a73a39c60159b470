"""Measurement: the runner's samples summarised, the answers checked, the result kept."""

from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.measure.stats import LatencyStats, summarize
from pytest_aiotbench.measure.validity import Validity, compare

__all__ = ["LatencyStats", "Validity", "WorkloadResult", "compare", "summarize"]
