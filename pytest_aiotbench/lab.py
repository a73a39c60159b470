"""What a process that runs workload items holds: its devices, its labelled images and the
stages' shared state. Devices are discovered and the dataset scanned on first need, so the
xdist controller (which runs no items) and ``--collect-only`` with ``--aiot-device=local``
never ask adb or read an image folder."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_aiotbench.devices import AdbOptions, Device, Selection, select_devices
from pytest_aiotbench.images import Dataset, load_dataset
from pytest_aiotbench.settings import Settings
from pytest_aiotbench.stages import Stages


class Lab:
    def __init__(self, settings: Settings, progress: Callable[[str], None] = print):
        self.settings = settings
        self._selection: Selection | None = None
        self._dataset: Dataset | None = None
        self._dataset_scanned = False
        self.stages = Stages(settings, lambda: self.dataset, progress)

    @property
    def devices(self) -> dict[str, Device]:
        """The devices ``--aiot-device`` names, by alias (asks adb on first use; raises
        UnknownDeviceError or DeviceError)."""
        if self._selection is None:
            chosen = self.settings
            self._selection = select_devices(
                chosen.device, local_python=chosen.local_python,
                adb=AdbOptions(server=chosen.adb_server, workdir=chosen.adb_workdir,
                               python=chosen.adb_python, keep_deployed=chosen.keep_deployed,
                               pin_big_cores=chosen.pin_big_cores))
        return {device.alias: device for device in self._selection.devices}

    @property
    def unavailable(self) -> list[str]:
        """Devices adb reported but that cannot run anything (offline, unauthorized)."""
        return list(self._selection.unavailable) if self._selection else []

    @property
    def dataset(self) -> Dataset | None:
        """The labelled images (scanned on first use; raises DatasetError)."""
        chosen = self.settings
        if not self._dataset_scanned:
            if chosen.dataset is not None:
                self._dataset = load_dataset(chosen.dataset, labels_file=chosen.labels,
                                             count=chosen.images,
                                             per_class=chosen.images_per_class,
                                             seed=chosen.seed)
            self._dataset_scanned = True
        return self._dataset

    def deploy_stats(self) -> dict[str, dict[str, int]]:
        """What was pushed to each device that pushes (adb devices)."""
        if self._selection is None:
            return {}
        return {device.alias: dict(device.deploy_stats) for device in self._selection.devices
                if getattr(device, "deploy_stats", None) is not None}

    def close(self) -> None:
        if self._selection is not None:
            for device in self._selection.devices:
                device.close()
        self.stages.close()


LAB_KEY = pytest.StashKey[Lab]()
