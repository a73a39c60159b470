"""The benchmark session: made in pytest_configure, it keeps the results and reports them
(terminal table, JSON, the release gate's comparison). The work that produces a result is
the staged fixtures' (stages.py); under pytest-xdist the results reach the controller's
session from the workers (farm.py), so one session reports the whole farm."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from pytest_aiotbench import networks
from pytest_aiotbench.devices import DeployStats, DeviceFacts
from pytest_aiotbench.gate import GateSummary, ReleaseGate
from pytest_aiotbench.gate.pairing import keep_artifact
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure import WorkloadResult
from pytest_aiotbench.measure.quiet import HostLoad
from pytest_aiotbench.measure.result import FAILED, SKIPPED
from pytest_aiotbench.report import gate_table, json_file, operators, table
from pytest_aiotbench.report.benchmark_records import BenchmarkRecords
from pytest_aiotbench.report.json_file import ResultsDocument
from pytest_aiotbench.score import score_all
from pytest_aiotbench.settings import Settings
from pytest_aiotbench.stages import StageCounts, StageFailed, StageSkipped


@dataclasses.dataclass
class RunFacts:
    """What the stages learned beside the results: each device's facts and pushes, the
    devices adb saw but could not use, what was exported. Made where items run; an xdist
    controller merges every worker's."""

    device_facts: dict[str, DeviceFacts] = dataclasses.field(default_factory=dict)
    deploy: dict[str, DeployStats] = dataclasses.field(default_factory=dict)
    unavailable: list[str] = dataclasses.field(default_factory=list)
    counts: StageCounts = dataclasses.field(default_factory=StageCounts)

    def merge(self, other: RunFacts) -> None:
        self.device_facts.update(other.device_facts)
        for alias, stats in other.deploy.items():
            self.deploy.setdefault(alias, DeployStats()).add(stats)
        self.unavailable += [name for name in other.unavailable if name not in self.unavailable]
        self.counts.add(other.counts)

    def facts_with_deploy(self) -> dict[str, DeviceFacts]:
        """Each device's facts with what was pushed to it (as the JSON records them)."""
        return {alias: dataclasses.replace(facts, deploy=self.deploy.get(alias))
                for alias, facts in self.device_facts.items()}

    def to_json(self) -> dict[str, Any]:
        return {"device_facts": {alias: facts.to_json()
                                 for alias, facts in self.device_facts.items()},
                "deploy": {alias: stats.to_json() for alias, stats in self.deploy.items()},
                "unavailable": list(self.unavailable),
                "counts": self.counts.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunFacts:
        return cls({alias: DeviceFacts.from_json(facts)
                    for alias, facts in data["device_facts"].items()},
                   {alias: DeployStats.from_json(stats) for alias, stats in data["deploy"].items()},
                   list(data["unavailable"]), StageCounts.from_json(data["counts"]))


class BenchSession:
    def __init__(self, settings: Settings, progress: Callable[[str], None] = print,
                 gate: ReleaseGate | None = None, forward: bool = False):
        self.settings = settings
        self.progress = progress
        #: The release gate (--aiot-baseline), and each workload's pytest-benchmark record.
        self.gate = gate
        self.benchmark_records = BenchmarkRecords(settings)
        self._gate_summary: GateSummary | None = None
        self.results: list[WorkloadResult] = []
        self._latest: dict[WorkloadKey, WorkloadResult] = {}
        self.facts = RunFacts()
        #: Where the facts of this process's own items come from (None: none run here).
        self.local_facts: Callable[[], RunFacts] | None = None
        self.started = time.perf_counter()
        #: On an xdist worker: results are sent to the controller, which reports them.
        self.forward = forward
        self._outgoing: list[WorkloadResult] = []
        #: The host's load when the header was written, before the first timing.
        self.host_load: HostLoad | None = None

    # --------------------------------------------------------------------- results
    def record(self, result: WorkloadResult) -> None:
        """Keep a workload's result: a later result of the same workload (a re-timing)
        takes the earlier one's place."""
        key = result.key
        earlier = self._latest.get(key)
        if earlier is not None:
            self.results[self.results.index(earlier)] = result
        else:
            self.results.append(result)
        self._latest[key] = result
        if self.settings.keep_artifacts is not None:
            keep_artifact(result, self.settings.keep_artifacts)
        if self.forward:
            self._outgoing.append(result)
        elif self.settings.json_path:
            # Written after every workload: an interrupted session keeps what it measured.
            self.write_json()

    def record_stage_error(self, key: WorkloadKey, error: StageFailed | StageSkipped,
                           nodeid: str) -> None:
        """A workload whose stage failed or skipped: kept, so the table and JSON show it."""
        self.record(WorkloadResult(
            key=key, nodeid=nodeid, status=SKIPPED if isinstance(error, StageSkipped) else FAILED,
            stage=error.stage, error=error.detail, protocol=self.settings.protocol))

    def take_outgoing(self) -> list[WorkloadResult]:
        """The results recorded since the last call, to send to the controller."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def latest(self, key: WorkloadKey) -> WorkloadResult | None:
        """The workload's result this session, if it has one."""
        return self._latest.get(key)

    def all_facts(self) -> RunFacts:
        """The facts from the workers, with this process's own."""
        merged = RunFacts()
        merged.merge(self.facts)
        if self.local_facts is not None:
            merged.merge(self.local_facts())
        return merged

    def devices(self) -> list[str]:
        """The devices of this session's results, in the order they first answered."""
        return list(dict.fromkeys(result.device for result in self.results))

    def document(self) -> ResultsDocument:
        from pytest_aiotbench.networks.torchvision_compat import fallback_reason

        run = self.all_facts()
        environment = json_file.host_environment()
        # torchvision is imported only where a reference network was built in this process
        environment["torchvision_import"] = fallback_reason or (
            "normal" if "torchvision.models" in sys.modules else "not imported")
        if self.host_load is not None:
            environment["host_load"] = self.host_load.to_json()
        environment["timing"] = {
            "session_s": time.perf_counter() - self.started,
            "prepare_s": run.counts.prepare_s, "artifacts_built": run.counts.artifacts_built,
            "artifacts_reused": run.counts.artifacts_reused,
            "exports": [dataclasses.asdict(cost) for cost in run.counts.exports]}
        document = ResultsDocument.build(self.results, score_all(self.results),
                                         run.facts_with_deploy(), environment,
                                         self.settings.to_json())
        document.unavailable_devices = run.unavailable
        if self.gate is not None and self._gate_summary is not None:
            document.baseline_comparison = gate_table.to_json(self.gate, self._gate_summary)
        return document

    def header_lines(self, farm_line: str | None = None) -> list[str]:
        """What the session's header says: devices, cache, protocol, runner; the host's
        load now, before any timing; the farm; the implementations some networks lack; the
        labelled images; the baseline."""
        chosen = self.settings
        lines = [f"aiotbench: devices {','.join(chosen.devices)}; artifact cache "
                 f"{chosen.cache_dir}; protocol {chosen.protocol}; runner {chosen.runner}"]
        if self.host_load is None:
            self.host_load = HostLoad.now()
        lines.append(f"aiotbench: {self.host_load.describe(chosen.quiet_limit)}")
        if farm_line:
            lines.append(farm_line)
        for implementation in chosen.implementations:
            lacking = [name for name in chosen.networks or networks.names()
                       if implementation not in networks.implementations_of(name)]
            if lacking:
                lines.append(f"aiotbench: no {implementation} implementation of "
                             f"{', '.join(lacking)}: not run in {implementation}")
        if chosen.dataset is not None:
            lines.append(f"aiotbench: accuracy on the labelled images in {chosen.dataset}")
        if self.gate is not None:
            lines.append(f"aiotbench: against the {self.gate.describe()}")
            protocol = self.gate.baseline.protocol
            if protocol and protocol != chosen.protocol:
                lines.append(f"aiotbench: warning: the baseline used the {protocol} protocol, "
                             f"this run the {chosen.protocol} protocol")
        return lines

    def finish_gate(self) -> GateSummary | None:
        """The comparison with the baseline over the whole session (None: no baseline)."""
        if self.gate is not None:
            self._gate_summary = self.gate.summarize(self.results, self.devices())
        return self._gate_summary

    def write_json(self, document: ResultsDocument | None = None) -> None:
        assert self.settings.json_path is not None
        (document or self.document()).write(self.settings.json_path)

    def write_reports(self) -> None:
        """The session's last JSON and its HTML page, from one document: the page is what
        aiotbench-report makes of that JSON file (the plotting library is imported only
        here)."""
        if not self.results:
            return
        document = self.document()
        if self.settings.json_path:
            self.write_json(document)
        if self.settings.html_path:
            from pytest_aiotbench.report import html

            html.write(self.settings.html_path, [html.Source("this session", document)])

    def summary_lines(self) -> list[str]:
        if not self.results:
            return []
        run = self.all_facts()
        lines = table.render(score_all(self.results), run.device_facts)
        if self.gate is not None and self._gate_summary is not None:
            lines += ["", *gate_table.render(self.gate, self._gate_summary), ""]
        lines += operators.terminal_lines(self.results)
        for alias, deploy in run.deploy.items():
            lines.append(f"deploy to {alias}: {deploy.pushed} files pushed "
                         f"({deploy.bytes_pushed / 1e6:.1f} MB), "
                         f"{deploy.skipped_same_hash} already there with the same hash"
                         + (f"; {deploy.retried} pushes went through on a second try"
                            if deploy.retried else ""))
        if run.unavailable:
            lines.append("devices seen but not usable: " + ", ".join(run.unavailable))
        elapsed = time.perf_counter() - self.started
        counts = run.counts
        lines.append(
            f"artifacts: {counts.describe_exports()}, {counts.artifacts_reused} from the "
            f"cache; preparing took {counts.prepare_s:.1f} s of the session's {elapsed:.1f} s "
            f"({counts.prepare_s / elapsed:.1%})")
        if self.settings.json_path:
            lines.append(f"results written to {self.settings.json_path}")
        if self.settings.html_path:
            lines.append(f"HTML report written to {self.settings.html_path}")
        return lines


SESSION_KEY = pytest.StashKey[BenchSession]()


def progress_writer(config: pytest.Config) -> Callable[[str], None]:
    """The session's progress lines: to the terminal reporter, else to stderr."""
    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)

    return write
