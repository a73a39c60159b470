"""An aarch64 Linux board measured end to end: the emulated arm64 board (tests/boards/
arm64-board: Debian's arm64 adbd and busybox under qemu, no Python), the plugin building the
board's native runners itself by cross-compiling them from the aarch64 wheels, timing, the
fp32 check and the JSON saying aarch64.

Emulation is hundreds of times slower than the host: these tests prove the path and the numbers'
validity, never the speed. The aarch64 wheels are fetched in set-up (here, or by .ci/run),
into the wheel folder; the plugin's own runs then look there and never at the index.
"""

from __future__ import annotations

import pytest
from arm64_board import Arm64Board, BoardUnavailable
from conftest import BOARD_FRAMEWORKS, TINY_CNN_MODULE, unavailable
from probe_files import float_input

from pytest_aiotbench.devices import RunnerFailed
from pytest_aiotbench.devices.adb import AdbDevice, AdbOptions
from pytest_aiotbench.runner.native.build import NativeBuilder
from pytest_aiotbench.runner.native.targets import Target
from pytest_aiotbench.runner.native.wheels import WHEELS_ENV
from pytest_aiotbench.runner.program import RunnerProgram
from pytest_aiotbench.runner.protocol import RunRequest, Timing

TARGET = "linux-aarch64"


@pytest.fixture(scope="module")
def arm64_board():
    board = Arm64Board("AIoT arm64 board")
    try:
        board.start()
    except BoardUnavailable as exc:
        unavailable("emulated arm64 board", exc)
    yield board
    board.stop()


def only_device(document: dict) -> dict:
    (device,) = document["devices"].values()
    return device


def test_a_small_network_on_the_arm64_board_with_every_native_backend(
        pytester, run_plugin, arm64_board, aarch64_wheels, monkeypatch):
    """The plugin's cross-built runners (built from an empty cache for the target by the
    phone's test, which runs first on the adb tests' worker, or here where they are not in the
    cache) run on the board with every backend."""
    monkeypatch.setenv(WHEELS_ENV, str(aarch64_wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the wheels are in the folder: no download
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin(
        "-v", f"--aiot-device={arm64_board.serial}", "--aiot-runner=native",
        f"--aiot-framework={','.join(BOARD_FRAMEWORKS)}", "--aiot-cooldown=0",
        "--aiot-min-samples=3", "--aiot-max-time=2")
    result.assert_outcomes(passed=len(BOARD_FRAMEWORKS))
    board = only_device(document)
    assert board["facts"]["machine"] == "aarch64"
    assert not board["facts"].get("python")
    rows = board["workloads"]
    assert sorted(row["framework"] for row in rows) == sorted(BOARD_FRAMEWORKS)
    for row in rows:
        assert row["runner"] == "native", row["error"]
        assert row["native_runner"]["target"] == TARGET
        assert row["validity"]["passed"], row["validity"]
        assert len(row["samples_s"]) >= 3


def test_a_runner_the_board_cannot_execute_is_named_with_both_architectures(
        arm64_board, artifact_cache, tmp_path):
    """This host's x86-64 runner pushed to the aarch64 board: an error naming the runner's
    target and the board's architecture, not a bare exit code."""
    runner = NativeBuilder(artifact_cache, progress=lambda line: None).build("tflite")
    assert runner.target == Target.host().name
    device = AdbDevice(arm64_board.serial, AdbOptions(workdir=str(tmp_path / "w")))
    try:
        request = RunRequest("tflite", "m.tflite", float_input("p.npy"), 1, Timing())
        program = RunnerProgram("native", runner.executable, runner.libraries, runner)
        with pytest.raises(RunnerFailed) as raised:
            device.run(program, request, 60)
        message = str(raised.value)
        assert Target.host().name in message and "aarch64" in message, message
    finally:
        device.close()
