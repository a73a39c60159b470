"""The release gate: this run against a baseline run, with thresholds that know the noise."""

from pytest_aiotbench.gate.baseline import Baseline, BaselineError, load_baseline
from pytest_aiotbench.gate.compare import GateSummary, ReleaseGate, WorkloadComparison
from pytest_aiotbench.gate.figures import Estimate, WorkloadFigures
from pytest_aiotbench.gate.pairing import BaselineArtifacts, PairPlan
from pytest_aiotbench.gate.thresholds import METRICS, Threshold, ThresholdError, parse_fail_on

__all__ = ["METRICS", "Baseline", "BaselineArtifacts", "BaselineError", "Estimate",
           "GateSummary", "PairPlan", "ReleaseGate", "Threshold", "ThresholdError",
           "WorkloadComparison", "WorkloadFigures", "load_baseline", "parse_fail_on"]
