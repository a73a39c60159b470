"""The workload item as a test: what ``test_workload`` does with its fixture.

Import ``test_workload`` into a test module and pytest collects it there, parametrized over
that module's networks (or the reference six) x frameworks x devices::

    from pytest_aiotbench import test_workload  # noqa: F401
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from pytest_aiotbench.measure.result import INVALID, PASSED, SKIPPED, WorkloadResult
from pytest_aiotbench.score import score_all
from pytest_aiotbench.session import BenchSession, WorkloadSpec


class Workload:
    """The fixture's value: one (network, framework, device) combination, ready to run."""

    def __init__(self, session: BenchSession, spec: WorkloadSpec, nodeid: str,
                 benchmark: BenchmarkFixture):
        self.session = session
        self.spec = spec
        self.nodeid = nodeid
        self.benchmark = benchmark
        self.result: WorkloadResult | None = None
        session.benchmark_records.claim(benchmark)

    def run(self) -> WorkloadResult:
        """Deploy, time and check; the measurement is recorded whatever the outcome, and its
        device-side samples become the item's pytest-benchmark record (a re-timing replaces
        both)."""
        if self.result is None:  # a test's aiot_measured may have measured it already
            self.result = self.session.measured(self.spec, self.nodeid)
        else:
            self.result = self.session.run(self.spec, self.nodeid, replacing=self.result)
        records = self.session.benchmark_records
        records.add(self.benchmark, self.result,
                    self.session.device_facts.get(self.spec.device, {}))
        records.update_scores(score_all(self.session.results))
        return self.result

    def check(self) -> WorkloadResult:
        """Run, then turn the outcome into the test's outcome (skip, fail with figures)."""
        result = outcome(self.run(), self.spec.id)
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
            self.session.progress(f"aiotbench: {self.spec.id} looks regressed "
                                  f"({comparison.failed_summary()}); re-timing to confirm "
                                  f"({len(earlier)} of {gate.confirm})")
            result = outcome(self.run(), self.spec.id)
            comparison = gate.judge(result, earlier)
        if comparison is not None and comparison.failed:
            pytest.fail(comparison.failure_message(gate.baseline), pytrace=False)
        return result


def outcome(result: WorkloadResult, workload_id: str) -> WorkloadResult:
    """A measured workload as a test's outcome: skipped, failed with the reason, or passed."""
    if result.status == SKIPPED:
        pytest.skip(result.error or "skipped")
    if result.status == INVALID:
        pytest.fail(result.error or "outputs diverge", pytrace=False)
    if result.status != PASSED:
        pytest.fail(f"{workload_id}: {result.error}", pytrace=False)
    return result


def test_workload(aiot_workload: Workload) -> None:
    """Deploy, time and check one (network, framework, device) workload."""
    aiot_workload.check()
