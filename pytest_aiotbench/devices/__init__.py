"""Devices: the interface, the local host, and the selection from ``--aiot-device``."""

from __future__ import annotations

from pytest_aiotbench.devices.base import Device, DeviceError, FrameworkMissing, RunnerFailed
from pytest_aiotbench.devices.local import LocalDevice


class UnknownDeviceError(LookupError):
    pass


def select_devices(spec: str, local_python: str | None = None) -> list[Device]:
    """Devices named by ``--aiot-device``: ``local``, ``all``, or a comma list."""
    available: list[Device] = [LocalDevice(python=local_python)]
    wanted = [part.strip() for part in spec.split(",") if part.strip()]
    if not wanted:
        raise UnknownDeviceError("--aiot-device is empty; use local, all, or a comma list")
    if wanted == ["all"]:
        return available
    by_name = {d.alias: d for d in available} | {d.serial: d for d in available}
    chosen: list[Device] = []
    for name in wanted:
        if name not in by_name:
            known = ", ".join(sorted({d.alias for d in available}))
            raise UnknownDeviceError(
                f"unknown device {name!r}; attached: {known} (or use 'all')")
        if by_name[name] not in chosen:
            chosen.append(by_name[name])
    return chosen


__all__ = ["Device", "DeviceError", "FrameworkMissing", "LocalDevice", "RunnerFailed",
           "UnknownDeviceError", "select_devices"]
