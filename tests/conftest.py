"""Shared set-up for the project's tests: one artifact cache for the whole run, and a way to
run pytest with the plugin in a fresh process (the plugin's registries are per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent

#: Short timing: these tests check behaviour, not speed (speed is `tox -e bench`).
FAST = ["--aiot-warmup=0.05", "--aiot-min-time=0.1", "--aiot-max-time=0.5",
        "--aiot-min-samples=5", "-p", "no:cacheprovider"]


@pytest.fixture(scope="session")
def artifact_cache() -> Path:
    """Exports are slow and deterministic: every test of the run shares one cache."""
    root = Path(os.environ.get("AIOTBENCH_TEST_CACHE", REPO / "models" / "cache" / "tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def run_plugin(pytester: pytest.Pytester, artifact_cache: Path):
    """Run pytest with the plugin in a subprocess; return (outcome, parsed JSON or None)."""

    def run(*args: str, json_report: bool = True):
        report = pytester.path / "aiot.json"
        extra = [f"--aiot-json={report}"] if json_report else []
        result = pytester.runpytest_subprocess(*FAST, f"--aiot-cache={artifact_cache}",
                                               *extra, *args, timeout=1200)
        document = json.loads(report.read_text()) if report.exists() else None
        return result, document

    return run


TINY_CNN_MODULE = '''
import torch
from pytest_aiotbench import register_network, test_workload  # noqa: F401


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1))
        self.classifier = torch.nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


@register_network(input_shape=(1, 3, 32, 32), num_classes=10)
def tiny_cnn():
    """A tiny CNN for 32x32 images."""
    return TinyCNN()
'''


@pytest.fixture(scope="session")
def adbd_factory(tmp_path_factory):
    """Start real adbd test devices; every one is disconnected and killed at the end.

    Where adbd cannot be had (not Debian, no package mirror), the adb tests skip with the
    reason, except in CI (CI=true), where they must run.
    """
    from adbd_testbed import AdbdUnavailable, DebianAdbd, adb_server_running, kill_adb_server

    started: list[DebianAdbd] = []
    server_was_running = adb_server_running()

    def start(model: str, **kwargs) -> DebianAdbd:
        root = tmp_path_factory.mktemp(f"adbd-{model.replace(' ', '_')}")
        try:
            device = DebianAdbd(root, model, **kwargs).start()
        except AdbdUnavailable as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"the adbd test device is required in CI: {exc}")
            pytest.skip(f"no adbd test device: {exc}")
        started.append(device)
        return device

    yield start
    for device in started:
        device.stop()
    if not server_was_running:  # leave the machine as it was
        kill_adb_server()


@pytest.fixture(scope="session")
def board(adbd_factory):
    """A two-core Linux board with Python and every framework, reached over adb."""
    return adbd_factory("AIoT Board")


@pytest.fixture(scope="session")
def python_without_frameworks(tmp_path_factory) -> str:
    """A Python environment with numpy and nothing else, as on a bare board."""
    root = tmp_path_factory.mktemp("bare-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True)
    only_numpy = root / "site"
    only_numpy.mkdir()
    numpy_dir = Path(np.__file__).parent
    for entry in (numpy_dir, numpy_dir.parent / "numpy.libs"):
        if entry.exists():
            os.symlink(entry, only_numpy / entry.name)
    site = next((root / "venv" / "lib").glob("python3*/site-packages"))
    (site / "only_numpy.pth").write_text(str(only_numpy) + "\n")
    return str(root / "venv" / "bin" / "python")


@pytest.fixture(scope="session")
def digits_set(tmp_path_factory):
    """Held-out digits as JPEGs in the ImageNet layout, and a CNN trained on the rest."""
    from digits import make_digits, network_module

    root = tmp_path_factory.mktemp("digits")
    val, weights, host_top1 = make_digits(root)
    return {"val": val, "module": network_module(weights), "host_top1": host_top1,
            "train": root / "train"}
