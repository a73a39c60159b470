"""``--aiot-baseline``: earlier runs to gate against, read and checked before anything runs.

Two kinds of file are accepted: an ``--aiot-json`` results file, and a pytest-benchmark run
(``--benchmark-save``/``--benchmark-autosave``/``--benchmark-json``) whose records were made
by aiotbench items. Anything else is refused with what it is and what to give instead.

Several runs (a comma list, or a folder of them) make one baseline whose intervals span
every run's: the drift of a machine between sessions, which no single run's confidence
interval can show, then counts as noise too.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_aiotbench.gate.figures import (
    ESTIMATES,
    EXTRA_INFO_KEY,
    Estimate,
    WorkloadFigures,
)
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.result import FAILED, SKIPPED
from pytest_aiotbench.report.json_file import SCHEMA as RESULTS_SCHEMA
from pytest_aiotbench.report.json_file import ResultsDocument, ResultsFileError

AIOTBENCH_JSON = "aiotbench JSON"
PYTEST_BENCHMARK = "pytest-benchmark run"


class BaselineError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class BaselineRun:
    path: Path
    kind: str
    created: str
    #: The timed workloads of the run (failed and skipped ones were never timed).
    workloads: dict[WorkloadKey, WorkloadFigures]
    protocol: str | None = None


@dataclasses.dataclass(frozen=True)
class Baseline:
    runs: tuple[BaselineRun, ...]
    #: Each workload's figures over every run that has it (one run: that run's figures).
    workloads: dict[WorkloadKey, WorkloadFigures]

    @property
    def protocol(self) -> str | None:
        protocols = {run.protocol for run in self.runs}
        return protocols.pop() if len(protocols) == 1 else None

    def devices(self) -> list[str]:
        return sorted({key.device for key in self.workloads})

    def where(self) -> str:
        if len(self.runs) == 1:
            return str(self.runs[0].path)
        return f"{len(self.runs)} runs ({', '.join(str(run.path) for run in self.runs)})"

    def describe(self) -> str:
        kinds = " + ".join(sorted({run.kind for run in self.runs}))
        dates = sorted(run.created for run in self.runs if run.created)
        when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else \
            "undated"
        return (f"{self.where()} ({kinds}, {when}: {len(self.workloads)} workloads on "
                f"{', '.join(self.devices())})")


def load_baseline(paths: Sequence[Path]) -> Baseline:
    """Read one or more runs (files, or folders of them); raise BaselineError."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*.json"))
            if not found:
                raise BaselineError(f"--aiot-baseline={path} is a folder with no .json runs in "
                                    "it; give results files, or the folder that holds them")
            files += found
        else:
            files.append(path)
    if not files:
        raise BaselineError("--aiot-baseline names no file")
    runs = tuple(_load_run(path) for path in files)
    keys = sorted({key for run in runs for key in run.workloads})
    return Baseline(runs, {key: _across([run.workloads[key] for run in runs
                                         if key in run.workloads]) for key in keys})


def _across(figures: list[WorkloadFigures]) -> WorkloadFigures:
    """One workload over several runs: the median of the runs' figures, the interval from the
    lowest bound to the highest, every run's flags; what else is shown (versions, hashes) is
    the last run's."""
    if len(figures) == 1:
        return figures[0]
    spans = {}
    for name in ESTIMATES:
        estimates = [getattr(f, name) for f in figures if getattr(f, name) is not None]
        spans[name] = Estimate(statistics.median(e.value for e in estimates),
                               min(e.low for e in estimates),
                               max(e.high for e in estimates)) if estimates else None
    # A row flagged in any run: the span its interval takes in holds a flagged timing.
    flags = tuple(dict.fromkeys(flag for f in figures for flag in f.flags))
    return dataclasses.replace(figures[-1], **spans, flags=flags)


def _load_run(path: Path) -> BaselineRun:
    if not path.exists():
        raise BaselineError(f"--aiot-baseline={path}: no such file; give the --aiot-json file "
                            "or the pytest-benchmark run (.benchmarks/...json) of an earlier "
                            "session")
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"--aiot-baseline={path}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"--aiot-baseline={path} is not valid JSON (corrupt or cut short?): "
                            f"{exc}") from None
    try:
        if isinstance(document, dict) and "schema" in document:
            return _from_results(path, document)
        if isinstance(document, dict) and isinstance(document.get("benchmarks"), list):
            return _from_pytest_benchmark(path, document)
    except BaselineError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"--aiot-baseline={path}: a workload is malformed ({type(exc).__name__}"
                            f": {exc}); the file was changed or cut short") from None
    raise BaselineError(f"--aiot-baseline={path} is neither an aiotbench results file (schema "
                        f"{RESULTS_SCHEMA}) nor a pytest-benchmark run")


def _from_results(path: Path, data: dict[str, Any]) -> BaselineRun:
    try:
        document = ResultsDocument.from_json(data)
    except ResultsFileError as exc:
        raise BaselineError(f"--aiot-baseline={path}: {exc}") from None
    workloads = {}
    for result in document.results():
        if result.status not in (FAILED, SKIPPED) and result.stats is not None:
            figures = WorkloadFigures.of(result)
            workloads[figures.key] = figures
    return BaselineRun(path, AIOTBENCH_JSON, document.created, workloads,
                       document.settings.get("protocol"))


def _from_pytest_benchmark(path: Path, document: dict[str, Any]) -> BaselineRun:
    workloads = {}
    others = 0
    for record in document["benchmarks"]:
        extra = record.get("extra_info") or {}
        if EXTRA_INFO_KEY not in extra:
            others += 1
            continue
        figures = WorkloadFigures.from_json(extra[EXTRA_INFO_KEY])
        workloads[figures.key] = figures
    if not workloads:
        raise BaselineError(f"--aiot-baseline={path} is a pytest-benchmark run with no aiotbench "
                            f"workloads ({others} other benchmarks); save one from a session "
                            "that ran aiotbench items")
    protocols = {record["options"].get("protocol") for record in document["benchmarks"]
                 if EXTRA_INFO_KEY in (record.get("extra_info") or {})}
    return BaselineRun(path, PYTEST_BENCHMARK, document.get("datetime", ""), workloads,
                       protocols.pop() if len(protocols) == 1 else None)
