"""Each workload's device-side samples as its item's pytest-benchmark record.

pytest-benchmark is the storage and comparison layer pytest users know: with the samples
in its records, ``--benchmark-json``, ``--benchmark-save``/``--benchmark-autosave``,
``--benchmark-compare``, ``--benchmark-compare-fail``, ``--benchmark-histogram``,
``--benchmark-columns`` and ``pytest-benchmark compare``/``list`` work on aiotbench items.
The samples are the runner's, taken on the device around one inference each; pytest-benchmark
never times anything here. The record: group = device alias, name = workload id,
fullname = node id, and ``extra_info`` with what a reader of a saved run needs.

This is the one module that touches pytest-benchmark's internals (its fixture's record hook
and ``Metadata``); setup.cfg bounds its version to the one the tests cover.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark import __version__ as PYTEST_BENCHMARK_VERSION
from pytest_benchmark.fixture import BenchmarkFixture
from pytest_benchmark.stats import Metadata, Stats

from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.gate.figures import EXTRA_INFO_KEY, WorkloadFigures
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.score.vips import DeviceScore
from pytest_aiotbench.settings import Settings

USED_BY = "aiotbench (device-side samples)"


class BenchmarkRecords:
    """The records made this session, kept so that scores known only later (a workload's
    share of its device's VIPS) reach them before pytest-benchmark saves."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._extra: dict[str, dict[str, Any]] = {}
        self._detached: dict[str, DetachedSource] = {}

    def claim(self, fixture: BenchmarkFixture) -> None:
        """Mark the item's ``benchmark`` fixture as used by aiotbench, so pytest-benchmark
        does not warn that it was never called, whatever the workload's outcome."""
        fixture._mode = USED_BY

    def add(self, fixture: BenchmarkFixture, result: WorkloadResult,
            device_facts: DeviceFacts | None) -> None:
        if not fixture.disabled:  # --benchmark-disable (or an xdist worker)
            self._fill(fixture, result, device_facts, fixture._add_stats)

    def add_detached(self, benchmarks: list[Metadata], result: WorkloadResult) -> None:
        """On the xdist controller, where no item runs: the record of a worker's result,
        into the list pytest-benchmark saves and shows (``controller_records``)."""
        source = self._detached.setdefault(result.nodeid, DetachedSource(result.nodeid))
        self._fill(source, result, None, benchmarks.append)

    def _fill(self, source: Any, result: WorkloadResult, device_facts: DeviceFacts | None,
              append: Callable[[Metadata], None]) -> None:
        if not result.samples_s or result.stats is None:
            return  # nothing was timed
        source.name = result.key.id
        source.group = result.device
        source.extra_info.update(self._extra_info(result, device_facts))
        record = source.stats
        if record is None:
            record = Metadata(source, iterations=1, options=self._options(result))
            append(record)
            source.stats = record
        else:  # a re-timing replaces the earlier timing's samples
            record.stats, record.options = Stats(), self._options(result)
        for sample in result.samples_s:
            record.update(sample)
        self._extra[result.nodeid] = source.extra_info

    def update_facts(self, device_facts: dict[str, DeviceFacts]) -> None:
        """Device facts known only later (an xdist worker sends them when it finishes)."""
        for extra in self._extra.values():
            facts = device_facts.get(extra["device"])
            if facts is not None:
                extra["device_facts"] = facts.to_json()

    def update_scores(self, scores: list[DeviceScore]) -> None:
        for score in scores:
            for row in score.workloads:
                extra = self._extra.get(row.result.nodeid)
                if extra is not None:
                    extra.update(vips=row.vips, vops=row.vops, vips_share=row.vips_share)

    def _extra_info(self, result: WorkloadResult, facts: DeviceFacts | None) -> dict[str, Any]:
        figures = WorkloadFigures.of(result)
        return {
            EXTRA_INFO_KEY: figures.to_json(),
            **result.key.to_json(), "id": result.key.id, "status": result.status,
            "accuracy": result.accuracy, "accuracy_source": result.accuracy_source,
            "top1": result.top1, "top5": result.top5,
            "vips": figures.vips.value if figures.vips else None,
            "vops": figures.vops.value if figures.vops else None,
            "vips_share": None,
            "gmacs": result.macs / 1e9 if result.macs else None,
            "runner": result.runner, "runner_runtime": result.runner_runtime,
            "framework_version": result.framework_version, "threads": result.threads,
            "artifact_sha256": figures.artifact_sha256, "weights": result.weights,
            "median_ci": [result.stats.median_ci_low_s, result.stats.median_ci_high_s],
            "load_s": result.load_s, "first_inference_s": result.first_inference_s,
            "peak_rss_after_timing_bytes": result.peak_rss_after_timing_bytes,
            "stop_reason": result.stop_reason,
            "flags": [flag.to_json() for flag in result.flags],
            "others_share": result.others_share,
            "device_facts": facts.to_json() if facts is not None else {},
        }

    def _options(self, result: WorkloadResult) -> dict[str, Any]:
        timing = self.settings.timing()
        return {"timer": f"{result.runner or '?'} runner: steady clock on the device, "
                         "one inference per sample",
                "protocol": timing.mode, "warmup": timing.warmup_s,
                "min_rounds": timing.min_samples, "min_time": timing.min_time_s,
                "max_time": timing.max_time_s, "rel_ci": timing.target_rel_ci,
                "confidence": timing.confidence, "threads": result.threads}


@dataclasses.dataclass
class DetachedSource:
    """What pytest-benchmark's ``Metadata`` reads of its fixture, for a record made where no
    fixture exists (the xdist controller)."""

    fullname: str
    name: str = ""
    group: str | None = None
    param: str | None = None
    params: dict[str, Any] | None = None
    extra_info: dict[str, Any] = dataclasses.field(default_factory=dict)
    cprofile_stats: Any = None
    has_error: bool = False
    stats: Metadata | None = None


def controller_records(config: pytest.Config) -> list[Metadata] | None:
    """pytest-benchmark's list of records on the xdist controller, which it saves and shows
    at the end; None where the user turned it off (--benchmark-disable, --benchmark-skip).
    pytest-benchmark disables itself under xdist because its own timing would share cores;
    aiotbench records hold device-side samples, so they stand."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.skip or (session.disabled and not session.xdist_warning):
        return None
    return session.benchmarks


def header_line(settings: Settings, benchmark_line: str) -> str:
    """pytest-benchmark's header line, saying what applies to which items: its own timer and
    rounds only to tests that call the ``benchmark`` fixture."""
    timing = settings.timing()
    own = benchmark_line.split("(defaults:", 1)[-1].rstrip(")").strip()
    return (f"benchmark: {PYTEST_BENCHMARK_VERSION} (aiotbench items: the device's own samples, "
            f"{timing.mode} protocol, warm-up {timing.warmup_s:g} s, {timing.min_time_s:g}-"
            f"{timing.max_time_s:g} s until the median is known to ±{timing.target_rel_ci:.0%}; "
            f"tests calling the benchmark fixture: {own})")


def replace_header(settings: Settings, lines: list[Any]) -> list[Any]:
    """Swap pytest-benchmark's header line (a string in a hook's result list)."""
    prefix = f"benchmark: {PYTEST_BENCHMARK_VERSION} (defaults:"
    return [header_line(settings, line) if isinstance(line, str) and line.startswith(prefix)
            else line for line in lines]
