"""The machine-readable results: every sample, the environment, the scores."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.runner.protocol import PeakCompute
from pytest_aiotbench.score.efficiency import gmac_per_s, peak_share
from pytest_aiotbench.score.vips import DeviceScore, workload_vips

#: The results file's schema. Rows have grown fields since (implementation, backend, id):
#: a reader takes what it knows and defaults what an older file lacks.
SCHEMA = "pytest-aiotbench/1"


class ResultsFileError(ValueError):
    """A document that is not a results file this version reads; the message says why."""


@dataclasses.dataclass
class WorkloadRow:
    """One workload's result as the file keeps it, with what was scored of it."""

    result: WorkloadResult
    vips: float | None = None
    vops: float | None = None
    gmac_per_s: float | None = None
    peak_share: float | None = None

    @classmethod
    def of(cls, result: WorkloadResult, peak: PeakCompute | None) -> WorkloadRow:
        vips, vops = workload_vips(result) if result.scored else (None, None)
        return cls(result, vips, vops, gmac_per_s(result), peak_share(result, peak))

    def to_json(self) -> dict[str, Any]:
        row = self.result.to_json()
        if self.vips is not None:
            row["vips"], row["vops"] = self.vips, self.vops
        row["gmac_per_s"], row["peak_share"] = self.gmac_per_s, self.peak_share
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> WorkloadRow:
        return cls(WorkloadResult.from_json(row), row.get("vips"), row.get("vops"),
                   row.get("gmac_per_s"), row.get("peak_share"))


@dataclasses.dataclass
class DeviceReport:
    facts: DeviceFacts
    vips: float
    vops: float
    workloads: list[WorkloadRow]

    def to_json(self) -> dict[str, Any]:
        return {"facts": self.facts.to_json(), "vips": self.vips, "vops": self.vops,
                "workloads": [row.to_json() for row in self.workloads]}

    @classmethod
    def from_json(cls, alias: str, data: dict[str, Any]) -> DeviceReport:
        return cls(DeviceFacts.from_json({"alias": alias, **(data.get("facts") or {})}),
                   float(data.get("vips") or 0.0), float(data.get("vops") or 0.0),
                   [WorkloadRow.from_json(row) for row in data["workloads"]])


@dataclasses.dataclass
class ResultsDocument:
    """What ``--aiot-json`` writes: every sample, the environment, the scores, per device."""

    created: str
    #: The host that ran pytest: its platform, Python and package versions, session timing.
    environment: dict[str, Any]
    #: ``Settings.to_json()`` of the run.
    settings: dict[str, Any]
    devices: dict[str, DeviceReport]
    #: Device aliases, best VIPS first.
    ranking: list[str]
    #: Devices adb reported but that could not run anything (offline, unauthorized).
    unavailable_devices: list[str] = dataclasses.field(default_factory=list)
    #: The release gate's comparison (report.gate_table.to_json), when a baseline was given.
    baseline_comparison: dict[str, Any] | None = None
    schema: str = SCHEMA

    @classmethod
    def build(cls, results: list[WorkloadResult], scores: list[DeviceScore],
              device_facts: dict[str, DeviceFacts], environment: dict[str, Any],
              settings: dict[str, Any]) -> ResultsDocument:
        devices = {}
        for score in scores:
            facts = device_facts.get(score.device) or DeviceFacts("unknown", score.device)
            devices[score.device] = DeviceReport(
                facts, score.vips, score.vops,
                [WorkloadRow.of(result, facts.peak_compute) for result in results
                 if result.device == score.device])
        return cls(created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                   environment=environment, settings=settings, devices=devices,
                   ranking=[score.device for score in scores])

    def results(self) -> list[WorkloadResult]:
        return [row.result for device in self.devices.values() for row in device.workloads]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": self.schema, "created": self.created, "environment": self.environment,
            "settings": self.settings,
            "devices": {alias: device.to_json() for alias, device in self.devices.items()},
            "ranking": self.ranking, "unavailable_devices": self.unavailable_devices}
        if self.baseline_comparison is not None:
            data["baseline_comparison"] = self.baseline_comparison
        return data

    @classmethod
    def from_json(cls, data: Any) -> ResultsDocument:
        """Read a results document; ResultsFileError names what is wrong with it."""
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        if found != SCHEMA:
            raise ResultsFileError(
                f"has schema {found!r}; this version of pytest-aiotbench reads {SCHEMA!r} "
                "(as --aiot-json writes): re-run it with this version"
                if isinstance(data, dict) and isinstance(found, str) else
                f"not an aiotbench results file (expected \"schema\": \"{SCHEMA}\", as "
                f"--aiot-json writes; found {found!r})")
        devices = data.get("devices")
        if not isinstance(devices, dict):
            raise ResultsFileError("has no \"devices\" object; is it complete? (--aiot-json "
                                   "writes it after every workload)")
        read = {}
        for alias, entry in devices.items():
            try:
                read[alias] = DeviceReport.from_json(alias, entry)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ResultsFileError(f"device {alias!r} has a malformed workload "
                                       f"({type(exc).__name__}: {exc})") from None
        return cls(created=str(data.get("created", "")),
                   environment=dict(data.get("environment") or {}),
                   settings=dict(data.get("settings") or {}), devices=read,
                   ranking=list(data.get("ranking") or []),
                   unavailable_devices=list(data.get("unavailable_devices") or []),
                   baseline_comparison=data.get("baseline_comparison"))

    def write(self, path: Path) -> None:
        """Through a temporary file beside it: a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=1, default=str))
        os.replace(temporary, path)


def host_environment() -> dict[str, Any]:
    """The host that ran pytest, with the versions of what made and measured the files."""
    from importlib.metadata import PackageNotFoundError, version

    packages: dict[str, str | None] = {}
    for name in _host_packages():
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"host": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "packages": packages}


def _host_packages() -> list[str]:
    """This plugin's own stack, then what each framework's adapters export with and run on
    (the frameworks say which: the list is theirs)."""
    from pytest_aiotbench import frameworks
    from pytest_aiotbench.networks import IMPLEMENTATIONS

    names = ["pytest-aiotbench", "pytest", "pytest-benchmark", "numpy", "torchvision",
             "adbutils"]
    for framework in frameworks.names():
        for implementation in IMPLEMENTATIONS:
            try:
                adapter = frameworks.adapter(framework, implementation)
            except frameworks.ImplementationUnsupported:
                continue
            names += [*adapter.export_packages, *adapter.device_packages]
    return list(dict.fromkeys(names))
