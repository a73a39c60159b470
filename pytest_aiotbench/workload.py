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
        self.result = self.session.run(self.spec, self.nodeid, replacing=self.result)
        records = self.session.benchmark_records
        records.add(self.benchmark, self.result,
                    self.session.device_facts.get(self.spec.device, {}))
        records.update_scores(score_all(self.session.results))
        return self.result

    def check(self) -> WorkloadResult:
        """Run, then turn the outcome into the test's outcome (skip, fail with figures)."""
        result = self._checked(self.run())
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
            result = self._checked(self.run())
            comparison = gate.judge(result, earlier)
        if comparison is not None and comparison.failed:
            pytest.fail(comparison.failure_message(gate.baseline), pytrace=False)
        return result

    def _checked(self, result: WorkloadResult) -> WorkloadResult:
        if result.status == SKIPPED:
            pytest.skip(result.error or "skipped")
        if result.status == INVALID:
            pytest.fail(result.error or "outputs diverge", pytrace=False)
        if result.status != PASSED:
            pytest.fail(f"{self.spec.id}: {result.error}", pytrace=False)
        return result


def test_workload(aiot_workload: Workload) -> None:
    """Deploy, time and check one (network, framework, device) workload."""
    aiot_workload.check()
