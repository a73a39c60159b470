"""``--aiot-baseline``: an earlier run to gate against, read and checked before anything runs.

Two kinds of file are accepted: an ``--aiot-json`` results file, and a pytest-benchmark run
(``--benchmark-save``/``--benchmark-autosave``/``--benchmark-json``) whose records were made
by aiotbench items. Anything else is refused with what it is and what to give instead.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pytest_aiotbench.gate.figures import EXTRA_INFO_KEY, WorkloadFigures, WorkloadKey
from pytest_aiotbench.measure.result import FAILED, SKIPPED
from pytest_aiotbench.report.json_file import SCHEMA as RESULTS_SCHEMA

AIOTBENCH_JSON = "aiotbench JSON"
PYTEST_BENCHMARK = "pytest-benchmark run"


class BaselineError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Baseline:
    path: Path
    kind: str
    created: str
    #: The timed workloads of the baseline (failed and skipped ones were never timed).
    workloads: dict[WorkloadKey, WorkloadFigures]
    protocol: str | None = None

    def devices(self) -> list[str]:
        return sorted({key.device for key in self.workloads})

    def describe(self) -> str:
        devices = ", ".join(self.devices())
        return (f"{self.path} ({self.kind}, {self.created or 'undated'}: "
                f"{len(self.workloads)} workloads on {devices})")


def load_baseline(path: Path) -> Baseline:
    path = Path(path)
    if not path.exists():
        raise BaselineError(f"--aiot-baseline={path}: no such file; give the --aiot-json file "
                            "or the pytest-benchmark run (.benchmarks/...json) of an earlier "
                            "session")
    if path.is_dir():
        raise BaselineError(f"--aiot-baseline={path} is a folder; give one results file in it")
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
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"--aiot-baseline={path}: a workload is malformed ({type(exc).__name__}"
                            f": {exc}); the file was changed or cut short") from None
    raise BaselineError(f"--aiot-baseline={path} is neither an aiotbench results file (schema "
                        f"{RESULTS_SCHEMA}) nor a pytest-benchmark run")


def _from_results(path: Path, document: dict[str, Any]) -> Baseline:
    schema = document["schema"]
    if schema != RESULTS_SCHEMA:
        raise BaselineError(f"--aiot-baseline={path} has schema {schema!r}; this version of "
                            f"pytest-aiotbench reads {RESULTS_SCHEMA!r}: re-run the baseline "
                            "with it")
    workloads = {}
    for device in document["devices"].values():
        for row in device["workloads"]:
            if row["status"] in (FAILED, SKIPPED) or not row.get("stats"):
                continue
            figures = WorkloadFigures.from_result_row(row)
            workloads[figures.key] = figures
    return Baseline(path, AIOTBENCH_JSON, document.get("created", ""), workloads,
                    (document.get("settings") or {}).get("protocol"))


def _from_pytest_benchmark(path: Path, document: dict[str, Any]) -> Baseline:
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
    return Baseline(path, PYTEST_BENCHMARK, document.get("datetime", ""), workloads,
                    protocols.pop() if len(protocols) == 1 else None)
