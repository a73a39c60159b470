"""Device farms on pytest-xdist: one worker per device, one report on the controller.

The controller runs no item; each worker runs its devices' items with its own lab. A
worker's results ride on its item reports (a report property, taken off again on the
controller, so junitxml and the like never see it) and join the controller's one session
and its pytest-benchmark records as they arrive, so an interrupted farm keeps what it
measured; each worker's device facts and export counts follow in ``workeroutput`` when it
finishes (pytest-xdist's controller/worker channel). The controller alone prints the
table, writes the JSON and judges the gate.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.report.benchmark_records import controller_records
from pytest_aiotbench.score import score_all
from pytest_aiotbench.session import BenchSession, RunFacts

RESULTS_PROPERTY = "aiotbench-results"
FACTS_KEY = "aiotbench"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def is_controller(config: pytest.Config) -> bool:
    """The xdist controller: it collects and runs nothing, its workers do."""
    return (not is_worker(config) and config.getoption("dist", "no") != "no"
            and not config.getoption("collectonly"))


def device_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling with a device as the scope: each device's items go to one
    worker, whole, so a device's deployed files stay with one worker and devices time side
    by side. (The timing locks keep any two timings of one device apart whatever the
    scheduling; xdist's own loadgroup cannot be used: it marks nodeids in a way pytest 9.2
    no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class DeviceScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            key = WorkloadKey.from_nodeid(nodeid)
            return f"device {key.device}" if key is not None else nodeid

    return DeviceScheduling(config, log)


def describe(config: pytest.Config) -> str:
    """The header line of a farm's controller."""
    scheduling = ("by device" if config.option.dist in ("load", "worksteal", "loadgroup")
                  else f"--dist {config.option.dist}")
    return (f"aiotbench: device farm on {config.option.numprocesses or 'the --tx'} xdist "
            f"workers, scheduled {scheduling}: each device's items on one worker, the local "
            "host timing alone; one table and one JSON here")


class FarmWorker:
    """Registered on an xdist worker: sends what this worker measured to the controller."""

    def __init__(self, session: BenchSession):
        self.session = session

    @pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after the phase is recorded
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        outgoing = self.session.take_outgoing()
        if outgoing:
            report.user_properties.append((RESULTS_PROPERTY, [r.to_json() for r in outgoing]))
        return report

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        session.config.workeroutput[FACTS_KEY] = self.session.all_facts().to_json()


class FarmController:
    """Registered on the xdist controller: the workers' results join the one session, and
    become pytest-benchmark records here (one save, one comparison, for the whole farm)."""

    def __init__(self, session: BenchSession, config: pytest.Config):
        self.session = session
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        carried = [value for name, value in report.user_properties if name == RESULTS_PROPERTY]
        if not carried:
            return
        report.user_properties[:] = [prop for prop in report.user_properties
                                     if prop[0] != RESULTS_PROPERTY]
        records = self.session.benchmark_records
        benchmarks = controller_records(self.config)
        for rows in carried:
            for row in rows:
                result = WorkloadResult.from_json(row)
                self.session.record(result)
                if benchmarks is not None:
                    records.add_detached(benchmarks, result)
        records.update_scores(score_all(self.session.results))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """xdist's default (load) and worksteal would spread one device's items over
        workers: those get the device scheduling; each, loadscope, loadfile stay as asked."""
        if config.option.dist in ("load", "worksteal", "loadgroup"):
            return device_scheduler(config, log)
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        facts = getattr(node, "workeroutput", {}).get(FACTS_KEY)
        if facts is not None:
            self.session.facts.merge(RunFacts.from_json(facts))
            self.session.benchmark_records.update_facts(self.session.facts.device_facts)
