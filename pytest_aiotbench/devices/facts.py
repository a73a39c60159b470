"""What is known about a device: recorded beside every result, in the table's title, the JSON
and the benchmark records. Each device kind fills what it can find; the rest stays None."""

from __future__ import annotations

import dataclasses
from typing import Any

from pytest_aiotbench.runner.protocol import PeakCompute


@dataclasses.dataclass
class DeployStats:
    """What a session pushed to a device, and what was already there with the same hash."""

    pushed: int = 0
    skipped_same_hash: int = 0
    bytes_pushed: int = 0
    #: Pushes that failed once for another reason than space and went through when tried again.
    retried: int = 0

    def add(self, other: DeployStats) -> None:
        self.pushed += other.pushed
        self.skipped_same_hash += other.skipped_same_hash
        self.bytes_pushed += other.bytes_pushed
        self.retried += other.retried

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeployStats:
        return cls(**{field.name: int(data.get(field.name) or 0)
                      for field in dataclasses.fields(cls)})


@dataclasses.dataclass
class DeviceFacts:
    """Model, cores, memory, OS, the Python and packages found there; later the peak
    compute a runner's probe measured and what was pushed."""

    kind: str
    alias: str
    model: str | None = None
    serial: str | None = None
    hostname: str | None = None
    manufacturer: str | None = None
    soc: str | None = None
    #: Android's ro.product.cpu.abi, or the machine where there is no such property.
    abi: str | None = None
    #: uname -m: what the device's binaries must be built for.
    machine: str | None = None
    cores: int | None = None
    #: Cores the runner may use (the default thread count).
    cores_usable: int | None = None
    core_max_khz: list[int] = dataclasses.field(default_factory=list)
    #: The cores the runner is pinned to where cores differ in max frequency.
    big_cores: list[int] = dataclasses.field(default_factory=list)
    memory_bytes: int | None = None
    kernel: str | None = None
    os: str | None = None
    #: The C library a program finds there: "glibc 2.36", "musl 1.2.4", "bionic", "none
    #: found" (no loader where programs look for one); None: not asked.
    libc: str | None = None
    python: str | None = None
    python_executable: str | None = None
    #: Why the device's Python could not be asked for its versions (None: it answered).
    python_error: str | None = None
    #: The versions of the packages the Python runner needs, as the device's Python has them.
    packages: dict[str, str | None] = dataclasses.field(default_factory=dict)
    workdir: str | None = None
    #: The peak probe's answer (None: no runner has been asked yet).
    peak_compute: PeakCompute | None = None
    #: What the session pushed (devices that push: adb).
    deploy: DeployStats | None = None

    @property
    def is_android(self) -> bool:
        return str(self.os or "").startswith("Android")

    def describe(self) -> str:
        """model, machine, N cores: as the table's title says it."""
        described = [str(value) for value in (self.model, self.machine) if value]
        if self.cores_usable or self.cores:
            described.append(f"{self.cores_usable or self.cores} cores")
        return ", ".join(described)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["peak_compute"] = self.peak_compute.to_json() if self.peak_compute else None
        data["deploy"] = self.deploy.to_json() if self.deploy else None
        return {name: value for name, value in data.items() if value is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceFacts:
        """From ``to_json``; facts written by older versions lack fields (None) and may hold
        ones this version does not know (dropped)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {name: value for name, value in data.items() if name in fields}
        values.setdefault("kind", "unknown")
        values.setdefault("alias", "?")
        if values.get("peak_compute"):
            values["peak_compute"] = PeakCompute.from_json(values["peak_compute"])
        else:
            values["peak_compute"] = None
        if values.get("deploy"):
            values["deploy"] = DeployStats.from_json(values["deploy"])
        return cls(**values)
