"""Android phones measured with nothing built by hand: the emulated Android-shaped phone
(tests/boards/android-phone: no glibc where programs look for it, adbd started by a private
loader, busybox as /system/bin/sh, getprop, a big and a little core) gets the linux-aarch64
runners the plugin cross-builds from the aarch64 wheels, with the glibc they were linked
against, started through that glibc's own loader.

Emulation is hundreds of times slower than the host: these tests prove the route and the
numbers' validity, never the speed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from adbd_testbed import adb_client
from android_phone import AndroidPhone, BoardUnavailable
from conftest import BOARD_FRAMEWORKS, TINY_CNN_MODULE, unavailable

from pytest_aiotbench.devices import RunnerFailed
from pytest_aiotbench.devices.adb import AdbDevice, AdbOptions
from pytest_aiotbench.runner.native.build import NativeBuilder
from pytest_aiotbench.runner.native.targets import Target
from pytest_aiotbench.runner.native.wheels import WHEELS_ENV
from pytest_aiotbench.runner.program import RunnerProgram

TARGET = "android-arm64-v8a"
LINUX_TARGET = "linux-aarch64"
LOADER = "/lib/ld-linux-aarch64.so.1"


def started(phone: AndroidPhone) -> AndroidPhone:
    try:
        phone.start()
    except BoardUnavailable as exc:
        unavailable("emulated Android phone", exc)
    return phone


@pytest.fixture(scope="module")
def alpha() -> Iterator[AndroidPhone]:
    phone = started(AndroidPhone("Phone-Alpha"))
    yield phone
    phone.stop()


@pytest.fixture(scope="module")
def beta() -> Iterator[AndroidPhone]:
    phone = started(AndroidPhone("Phone-Beta"))
    yield phone
    phone.stop()


@pytest.fixture
def offline_wheels(aarch64_wheels, monkeypatch):
    monkeypatch.setenv(WHEELS_ENV, str(aarch64_wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # the wheels are in the folder: no download


def has_no_glibc_loader(phone: AndroidPhone) -> bool:
    answer = adb_client().device(phone.serial).shell2(f"ls {LOADER}", v2=True)
    return answer.returncode != 0


def test_a_phone_is_measured_through_the_loader_route_from_an_empty_runner_cache(
        pytester, run_plugin, alpha, offline_wheels, artifact_cache):
    # Empty for both targets: the linux-aarch64 builds that the loader route wraps are made
    # here too (test_arm64_board, later in the same worker, reuses them).
    for target in (TARGET, LINUX_TARGET):
        for entry in (artifact_cache / "native").glob(f"[!.]*-{target}-*"):
            shutil.rmtree(entry)
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin(
        "-v", f"--aiot-device={alpha.serial}", "--aiot-runner=native",
        f"--aiot-framework={','.join(BOARD_FRAMEWORKS)}", "--aiot-cooldown=0",
        "--aiot-min-samples=3", "--aiot-max-time=2")
    result.assert_outcomes(passed=len(BOARD_FRAMEWORKS))
    result.stdout.fnmatch_lines(["*native+glibc: the C++ runner with its own C library "
                                 "(glibc 2.*, bundled)*"])
    (phone,) = document["devices"].values()
    facts = phone["facts"]
    assert facts["os"].startswith("Android") and facts["abi"] == "arm64-v8a"
    assert facts["libc"] == "bionic" and facts["model"] == "Phone-Alpha"
    assert facts["soc"] and facts["big_cores"] == [max(range(facts["cores"]))]
    for row in phone["workloads"]:
        assert row["validity"]["passed"], row["validity"]
        native = row["native_runner"]
        assert native["target"] == TARGET and native["built_this_session"] is True
        assert native["libc"].startswith("glibc 2.") and native["libc"].endswith(", bundled")
        assert native["loader"] == LOADER.rsplit("/")[-1]
        assert not [note for note in row["notes"] if "unpinned" in note]
    assert has_no_glibc_loader(alpha)


def test_two_phones_and_the_host_are_ranked_in_one_farm_session(
        pytester, run_plugin, alpha, beta, offline_wheels):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin(
        "-n", "3", f"--aiot-device=local,{alpha.serial},{beta.serial}",
        "--aiot-runner=native", "--aiot-framework=onnxruntime", "--aiot-cooldown=0",
        "--aiot-min-samples=3", "--aiot-max-time=2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["ranking by VIPS:*"])
    devices = document["devices"]
    assert len(devices) == 3 and len(document["ranking"]) == 3
    phones = {device["facts"]["model"]: device for device in devices.values()
              if device["facts"].get("os", "").startswith("Android")}
    assert set(phones) == {"Phone-Alpha", "Phone-Beta"}
    for phone in phones.values():
        assert phone["facts"]["abi"] == "arm64-v8a" and phone["facts"]["soc"] == "AIOT6"
        (row,) = phone["workloads"]
        assert row["validity"]["passed"] and row["native_runner"]["target"] == TARGET
        assert row["native_runner"]["libc"].endswith(", bundled")
    assert has_no_glibc_loader(alpha) and has_no_glibc_loader(beta)


def test_a_work_folder_mounted_noexec_is_named_before_anything_is_pushed(
        alpha, artifact_cache, offline_wheels):
    builder = NativeBuilder(artifact_cache, progress=lambda line: None)
    runner = builder.with_own_glibc(builder.build("onnxruntime", target=Target.parse(
        "linux-aarch64")), Target.parse(TARGET))
    device = AdbDevice(alpha.serial, AdbOptions(workdir="/sdcard/aiotbench"))
    try:
        with pytest.raises(RunnerFailed) as raised:
            device.check_program(RunnerProgram("native", runner.executable, runner.libraries,
                                               runner))
        message = str(raised.value)
        assert "/sdcard/aiotbench is on /storage/emulated, mounted noexec" in message, message
        assert "--aiot-adb-workdir" in message
        assert not device.pushed
    finally:
        device.close()
