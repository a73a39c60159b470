"""Devices: the interface, the local host, adb devices, and ``--aiot-device`` selection."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pytest_aiotbench.devices.adb import (
    NETWORK_SERIAL,
    AdbDevice,
    AdbOptions,
    connect_network_devices,
    list_adb_devices,
)
from pytest_aiotbench.devices.base import Device, DeviceError, FrameworkMissing, RunnerFailed
from pytest_aiotbench.devices.facts import DeployStats, DeviceFacts
from pytest_aiotbench.devices.local import LocalDevice


class UnknownDeviceError(LookupError):
    pass


@dataclasses.dataclass
class Selection:
    devices: list[Device]
    #: Devices seen but not usable (offline, unauthorized), as "serial (state)".
    unavailable: list[str]


def select_devices(names: Sequence[str], local_python: str | None = None,
                   adb: AdbOptions | None = None) -> Selection:
    """Devices named by ``--aiot-device``: ``local``, ``all``, ``adb`` (every adb device, not
    the host: a farm of phones), or aliases or serials. adb is asked only when something
    other than ``local`` is named."""
    wanted = [name.strip() for name in names if name.strip()]
    if not wanted:
        raise UnknownDeviceError("--aiot-device is empty; use local, all, or a comma list")
    local = LocalDevice(python=local_python)
    if wanted == ["local"]:
        return Selection([local], [])

    adb = adb or AdbOptions()
    # A board on the network named by its address is connected first, as `adb connect` would.
    not_connected = connect_network_devices(
        [name for name in wanted if NETWORK_SERIAL.fullmatch(name)], adb.server)
    seen, _address = list_adb_devices(adb.server)
    ready = [serial for serial, state in seen if state == "device"]
    unavailable = [f"{serial} ({state})" for serial, state in seen if state != "device"]
    attached: list[Device] = [local]
    vanished: dict[str, str] = {}
    for serial in sorted(ready):
        # Listed ready, it may be gone by the time it is asked its model: a device nobody
        # asked for is then only listed as unusable, never the end of the session.
        try:
            attached.append(AdbDevice(serial, adb))
        except DeviceError as exc:
            vanished[serial] = str(exc)
            unavailable.append(f"{serial} (vanished)")
    _make_aliases_unique(attached)
    if "all" in wanted:
        return Selection(attached, unavailable)
    if wanted == ["adb"]:
        return Selection(attached[1:], unavailable)

    by_name = {d.alias: d for d in attached} | {d.serial: d for d in attached}
    not_ready = {serial: state for serial, state in seen if state != "device"}
    chosen: list[Device] = []
    for name in wanted:
        if name in not_ready:
            raise UnknownDeviceError(f"device {name!r} is {not_ready[name]}: reconnect it "
                                     "(and accept the debugging prompt) or leave it out")
        if name in not_connected:
            raise UnknownDeviceError(f"device {name!r} cannot be reached: "
                                     f"{not_connected[name]}")
        if name in vanished:
            raise UnknownDeviceError(f"device {name!r} vanished as it was listed: "
                                     f"{vanished[name]}")
        if name not in by_name:
            listing = ", ".join([d.alias for d in attached] + unavailable)
            raise UnknownDeviceError(f"unknown device {name!r}; attached: {listing} "
                                     "(or use 'all')")
        if by_name[name] not in chosen:
            chosen.append(by_name[name])
    for device in attached:
        if device not in chosen:
            device.close()
    return Selection(chosen, unavailable)


def _make_aliases_unique(devices: list[Device]) -> None:
    """Two phones of one model get model, model-2, ... in serial order."""
    counts: dict[str, int] = {}
    for device in devices:
        counts[device.alias] = counts.get(device.alias, 0) + 1
        if counts[device.alias] > 1:
            device.alias = f"{device.alias}-{counts[device.alias]}"


__all__ = ["AdbDevice", "AdbOptions", "DeployStats", "Device", "DeviceError", "DeviceFacts",
           "FrameworkMissing", "LocalDevice", "RunnerFailed", "Selection", "UnknownDeviceError",
           "select_devices"]
