"""What a process that runs workload items holds: its devices, its labelled images and the
stages' shared state. Devices are discovered and the dataset scanned on first need, so the
xdist controller (which runs no items) and ``--collect-only`` with ``--aiot-device=local``
never ask adb or read an image folder."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from pytest_aiotbench.devices import Device, Selection, select_devices
from pytest_aiotbench.gate.pairing import PairPlan
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.images import Labelled, load_labelled
from pytest_aiotbench.matrix import ArtifactChoice, NetworkChoice
from pytest_aiotbench.session import RunFacts
from pytest_aiotbench.settings import Settings
from pytest_aiotbench.stages import Stages, StageSkipped


class Lab:
    def __init__(self, settings: Settings, progress: Callable[[str], None] = print,
                 pairing: Callable[[WorkloadKey, str], PairPlan] | None = None):
        self.settings = settings
        self._selection: Selection | None = None
        self._dataset: Labelled | None = None
        self._dataset_scanned = False
        self.stages = Stages(settings, lambda: self.dataset, progress, pairing)

    @property
    def devices(self) -> dict[str, Device]:
        """The devices ``--aiot-device`` names, by alias (asks adb on first use; raises
        UnknownDeviceError or DeviceError)."""
        if self._selection is None:
            self._selection = select_devices(self.settings.devices,
                                             local_python=self.settings.local_python,
                                             adb=self.settings.adb)
        return {device.alias: device for device in self._selection.devices}

    @property
    def unavailable(self) -> list[str]:
        """Devices adb reported but that cannot run anything (offline, unauthorized)."""
        return list(self._selection.unavailable) if self._selection else []

    @property
    def dataset(self) -> Labelled | None:
        """The labelled images or arrays (read on first use; raises DatasetError)."""
        chosen = self.settings
        if not self._dataset_scanned:
            if chosen.dataset is not None:
                self._dataset = load_labelled(chosen.dataset, labels_file=chosen.labels,
                                              count=chosen.images,
                                              per_class=chosen.images_per_class,
                                              seed=chosen.seed)
            self._dataset_scanned = True
        return self._dataset

    def check_runner(self, key: WorkloadKey) -> None:
        """Skip (StageSkipped) a workload whose device can have no runner, before export."""
        device = self.devices.get(key.device)
        if device is not None:
            self.stages.check_runner(device, key)

    def prefetch(self, keys: list[WorkloadKey]) -> None:
        """Start the exports these workloads need ahead of them, several at once; not for
        a workload whose device can have no runner (it skips before any export)."""
        pairs: dict[tuple[NetworkChoice, ArtifactChoice], None] = {}
        for key in keys:
            try:
                self.check_runner(key)
            except StageSkipped:
                continue
            pairs.setdefault((NetworkChoice(key.network, key.implementation),
                              ArtifactChoice(key.framework, key.variant)), None)
        self.stages.prefetch(list(pairs))

    def facts(self) -> RunFacts:
        """What this process's stages learned: device facts, pushes, export counts."""
        deploy = {} if self._selection is None else {
            device.alias: dataclasses.replace(device.deploy_stats)
            for device in self._selection.devices if device.deploy_stats is not None}
        return RunFacts(dict(self.stages.device_facts), deploy, self.unavailable,
                        self.stages.counts)

    def close(self) -> None:
        if self._selection is not None:
            for device in self._selection.devices:
                device.close()
        self.stages.close()


LAB_KEY = pytest.StashKey[Lab]()
