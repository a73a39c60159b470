"""The workload item as a test: what ``test_workload`` does with its fixture.

Import ``test_workload`` into a test module and pytest collects it there, parametrized over
that module's networks (or the reference six) x frameworks x devices::

    from pytest_aiotbench import test_workload  # noqa: F401
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from pytest_aiotbench.lab import Lab
from pytest_aiotbench.measure.result import INVALID, PASSED, WorkloadResult
from pytest_aiotbench.score import score_all
from pytest_aiotbench.session import BenchSession
from pytest_aiotbench.stages import Deployed


class Workload:
    """The fixture's value: one deployed and measured workload, and what checks it."""

    def __init__(self, session: BenchSession, lab: Lab, deployed: Deployed,
                 result: WorkloadResult, nodeid: str, benchmark: BenchmarkFixture):
        self.session = session
        self.lab = lab
        self.deployed = deployed
        self.key = deployed.key
        self.nodeid = nodeid
        self.benchmark = benchmark
        self.result = result
        session.benchmark_records.claim(benchmark)
        self._add_record()

    def retime(self) -> WorkloadResult:
        """Time the deployed workload again; the new timing replaces the earlier one in the
        session and in the item's pytest-benchmark record."""
        self.result = self.lab.stages.measure(self.deployed, self.nodeid)
        self.session.record(self.result)
        self._add_record()
        return self.result

    def _add_record(self) -> None:
        """The device-side samples become the item's pytest-benchmark record."""
        records = self.session.benchmark_records
        records.add(self.benchmark, self.result,
                    self.lab.stages.device_facts.get(self.key.device))
        records.update_scores(score_all(self.session.results))

    def check(self) -> WorkloadResult:
        """Judge the measurement: its answers against fp32, its figures against the
        baseline (a failure names the figures)."""
        result = outcome(self.result)
        gate = self.session.gate
        if gate is None:
            return result
        comparison = gate.judge(result)
        # A regression must show again in a fresh timing: a busy moment of a shared device
        # passes, a real slowdown stays.
        earlier = []
        while (comparison is not None and comparison.failed
               and len(earlier) < gate.confirm):
            earlier.append(comparison)
            self.session.progress(f"aiotbench: {self.key.id} looks regressed "
                                  f"({comparison.failed_summary()}); re-timing to confirm "
                                  f"({len(earlier)} of {gate.confirm})")
            result = outcome(self.retime())
            comparison = gate.judge(result, earlier)
        if comparison is not None and comparison.failed:
            pytest.fail(comparison.failure_message(gate.baseline), pytrace=False)
        return result


def outcome(result: WorkloadResult) -> WorkloadResult:
    """A measured workload as the test's outcome: failed with the reason, or passed."""
    if result.status == INVALID:
        pytest.fail(result.error or "outputs diverge", pytrace=False)
    if result.status != PASSED:
        pytest.fail(result.error or result.status, pytrace=False)
    return result


def test_workload(aiot_workload: Workload) -> None:
    """Deploy, time and check one (network, framework, device) workload."""
    aiot_workload.check()
