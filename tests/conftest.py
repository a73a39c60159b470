"""Shared set-up for the project's tests: one artifact cache for the whole run, and a way to
run pytest with the plugin in a fresh process (the plugin's registries are per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from pytest_aiotbench import networks
from pytest_aiotbench.networks.registry import unregister

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent

#: pytest plugins that packages of the environment bring along (hypothesis, hydra-core,
#: anyio, jaxtyping, kgb come with the frameworks) and that no test here uses: each pytest
#: process would spend seconds importing them (hypothesis alone about 2 s).
UNUSED_PLUGINS = ("hypothesispytest", "hydra_pytest", "anyio", "jaxtyping", "kgb")
NO_UNUSED_PLUGINS = [arg for name in UNUSED_PLUGINS for arg in ("-p", f"no:{name}")]

#: Short timing: these tests check behaviour, not speed (speed is `tox -e bench`). Exports one
#: at a time as each item needs it: three test workers share CI's two cores already, and the
#: export pool has tests of its own (test_export_pool.py names its workers).
FAST = ["--aiot-warmup=0.05", "--aiot-min-time=0.1", "--aiot-max-time=0.3",
        "--aiot-min-samples=5", "--aiot-export-workers=1", "-p", "no:cacheprovider",
        *NO_UNUSED_PLUGINS]


def unavailable(what: str, reason: object) -> NoReturn:
    """A real part the tests need cannot be had on this machine: the test skips with the
    reason, except in CI (CI=true), where it must run and fails instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI: {reason}")
    pytest.skip(f"no {what}: {reason}")


@pytest.fixture(scope="session", autouse=True)
def _not_an_xdist_worker_below():
    """Under pytest-xdist, a worker's environment names it (PYTEST_XDIST_WORKER, ...); a pytest
    a test starts would inherit that and take itself for a worker (pytest-benchmark then
    disables itself). The pytest sessions the tests start are sessions of their own."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("PYTEST_XDIST_")]:
            patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def artifact_cache() -> Path:
    """Exports are slow and deterministic: every test of the run shares one cache."""
    root = Path(os.environ.get("AIOTBENCH_TEST_CACHE", REPO / "models" / "cache" / "tests"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def native_runners(artifact_cache):
    """Every backend built for this host, as the plugin builds them (and caches them)."""
    from pytest_aiotbench.runner.native.build import NativeBuilder, frameworks_with_backends

    builder = NativeBuilder(artifact_cache, progress=lambda line: None)
    return {framework: builder.build(framework) for framework in frameworks_with_backends()}


def registered_networks() -> list[tuple[str, str]]:
    return [(card.name, card.implementation) for card in networks.cards()]


@pytest.fixture
def run_plugin(pytester: pytest.Pytester, artifact_cache: Path):
    """Run pytest with the plugin in a subprocess; return (outcome, parsed JSON or None).

    ``in_process=True`` runs it in this process instead (milliseconds instead of seconds), for
    runs that register no network: a usage error before collection, the reference suite
    collected. The plugin's registries are per process, so a run that collected a module
    registering networks would leave them registered here; such a run fails its test and must
    run in a subprocess.
    """

    def run(*args: str, json_report: bool = True, in_process: bool = False):
        report = pytester.path / "aiot.json"
        extra = [f"--aiot-json={report}"] if json_report else []
        arguments = [*FAST, f"--aiot-cache={artifact_cache}", *extra, *args]
        if in_process:
            before = registered_networks()
            result = pytester.runpytest_inprocess(*arguments)
            leaked = sorted(set(registered_networks()) - set(before))
            for name, _implementation in leaked:  # leave this process as it was
                unregister(name)
            assert not leaked, f"the in-process run registered {leaked}: run it in a subprocess"
        else:
            result = pytester.runpytest_subprocess(*arguments, timeout=1200)
        document = json.loads(report.read_text()) if report.exists() else None
        return result, document

    return run


#: The test files that start adbd test devices. Under pytest-xdist (tox runs ``-n 2``) they
#: all run on one worker: they share the host's one adb server, which the last of them stops,
#: and a session on another worker asking for every device would take their boards too.
#: (xdist's own ``xdist_group`` mark does nothing under pytest 9.2: it renames node ids
#: through an attribute that pytest no longer reads.)
ADB_TEST_FILES = ("tests/test_adb_devices.py", "tests/test_device_farm.py",
                  "tests/test_native_runner.py", "tests/test_arm64_board_rig.py",
                  "tests/test_arm64_board.py", "tests/test_android_phone_rig.py",
                  "tests/test_android_phone.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep ADB_TEST_FILES true: a test elsewhere that starts adbd fails at collection."""
    for item in items:
        path = item.path.relative_to(REPO).as_posix() if item.path.is_relative_to(REPO) else ""
        if "adbd_factory" in getattr(item, "fixturenames", ()) and path not in ADB_TEST_FILES:
            raise pytest.UsageError(f"{item.nodeid} starts adbd test devices: add its file to "
                                    "ADB_TEST_FILES in tests/conftest.py")


@pytest.hookimpl(tryfirst=True)  # before the plugin's own device-farm scheduler
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """The adb tests on one worker, the HTML report's on one worker; every other test goes to
    whichever worker is free, as ``--dist load`` does."""
    from xdist.scheduler import LoadScopeScheduling

    class AdbTestsOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            if path in ADB_TEST_FILES:
                return "adb"
            # Its module fixture runs two real sessions: once, on one worker.
            return path if path == "tests/test_html_report.py" else nodeid

    return AdbTestsOnOneWorker(config, log)


#: A test module of the reference matrix: it registers no network of its own.
REFERENCE_MODULE = "from pytest_aiotbench import test_workload  # noqa: F401\n"


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
            unavailable("adbd test device", exc)
        started.append(device)
        return device

    yield start
    for device in started:
        device.stop()
    if not server_was_running:  # leave the machine as it was
        kill_adb_server()


#: The native backends an aarch64 board or phone gets from PyPI's wheels (pytorch-mobile's
#: aarch64 torch wheel there is a CUDA build: a skip saying so, see test_build_targets.py).
BOARD_FRAMEWORKS = ("onnxruntime", "tflite", "executorch")


@pytest.fixture(scope="session")
def aarch64_wheels() -> Path:
    """The wheel folder holding the aarch64 wheels of the host's versions (set-up: fetched
    once, by .ci/run or here, then offline)."""
    from pytest_aiotbench.runner.native.build import BUILD_COMMAND
    from pytest_aiotbench.runner.native.wheels import WHEELS_ENV

    folder = Path(os.environ.get(WHEELS_ENV) or
                  Path.home() / ".cache" / "pytest-aiotbench" / "wheels")
    command = [str(Path(sys.executable).parent / BUILD_COMMAND), "--target", "linux-aarch64",
               "--fetch-wheels", "--framework", ",".join(BOARD_FRAMEWORKS),
               "--wheels", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        unavailable("aarch64 wheels", f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return folder


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


def onnx_chain(depth: int, path: Path) -> None:
    """Flatten, then ``depth`` 64x64 MatMuls: an ONNX model in milliseconds, no exporter."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(depth)
    weights = [numpy_helper.from_array(rng.standard_normal((64, 64), np.float32) / 8, f"w{i}")
               for i in range(depth)]
    nodes = [helper.make_node("Flatten", ["x"], ["h0"], axis=1)]
    nodes += [helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"h{i + 1}"])
              for i in range(depth)]
    nodes.append(helper.make_node("Identity", [f"h{depth}"], ["y"]))
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)
