"""Which target a device's runner is built for, and the reasons a host cannot build one.

Fast: nothing here compiles. The builds themselves are exercised by test_native_runner.py
(the host) and test_arm64_board.py (an emulated aarch64 board)."""

from __future__ import annotations

import pytest

from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.runner.native.build import NativeBuilder
from pytest_aiotbench.runner.native.targets import (
    LINUX_ARCHITECTURES,
    LinuxArchitecture,
    LinuxCross,
    Target,
    TargetUnsupported,
)
from pytest_aiotbench.runner.native.wheels import WheelSite, host_version


def facts(**given) -> DeviceFacts:
    return DeviceFacts(kind="adb", alias="b", serial="s", **given)


@pytest.mark.parametrize(("given", "target"), [
    ({"machine": "aarch64", "abi": "aarch64", "os": "Debian GNU/Linux 12"}, "linux-aarch64"),
    ({"machine": "armv7l", "abi": "armv7l"}, "linux-armv7l"),
    ({"machine": "aarch64", "abi": "arm64-v8a", "os": "Android 14"}, "android-arm64-v8a"),
    ({"machine": "x86_64", "abi": "x86_64", "os": "Android 15"}, "android-x86_64"),
])
def test_a_device_target_follows_its_facts(given, target):
    assert Target.of_device(facts(**given)).name == target
    assert Target.parse(target) == Target.of_device(facts(**given))


def test_a_target_name_that_is_not_one_is_refused_naming_the_forms():
    with pytest.raises(ValueError, match=r"linux-<uname -m> \(linux-aarch64\) or android-"):
        Target.parse("aarch64")


def test_no_cross_compiler_names_the_package_to_install():
    missing = LinuxArchitecture("aarch64", "aiot-no-such-triple", "g++-aiot-no-such-triple",
                                ("manylinux_2_28_aarch64",))
    with pytest.raises(TargetUnsupported, match=r"aiot-no-such-triple-g\+\+ is not on PATH\)"
                                                r": install the g\+\+-aiot-no-such-triple"):
        LinuxCross.find(missing)


@pytest.mark.parametrize("machine", ["riscv64", "armv7l"])
def test_a_cpu_without_wheels_skips_naming_the_cpu_and_the_wheel(machine, tmp_path,
                                                                 monkeypatch):
    """No onnxruntime wheel exists for these CPUs; the index is switched off here (no
    downloads in tests), which pip answers the same way: no matching distribution."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    builder = NativeBuilder(tmp_path, progress=lambda line: None, wheels=tmp_path / "wheels")
    version = host_version("onnxruntime")
    with pytest.raises(TargetUnsupported) as raised:
        builder.build("onnxruntime", target=Target("linux", machine))
    message = str(raised.value)
    assert f"no onnxruntime {version} wheel for {machine} (linux-{machine}: manylinux" in message
    assert "No matching distribution" in message or "ERROR" in message, message


def test_a_cpu_nobody_builds_for_is_named():
    builder = NativeBuilder("/nonexistent", progress=lambda line: None)
    with pytest.raises(TargetUnsupported, match=r"no wheels are known for the CPU 'mips' "
                                                r"\(linux-mips\).*aarch64"):
        builder.build("tflite", target=Target("linux", "mips"))


def test_an_android_target_names_the_ndk_build():
    builder = NativeBuilder("/nonexistent", progress=lambda line: None)
    with pytest.raises(TargetUnsupported, match=r"--android-abi arm64-v8a --ndk NDK"):
        builder.build("tflite", target=Target("android", "arm64-v8a"))


def test_the_wheel_folder_serves_the_same_release_for_the_same_cpu(tmp_path):
    """A CPU build's local label (torch 2.13.0+cpu) is the same release; another CPU's or
    another release's wheel is not taken."""
    for name in ("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_aarch64.whl",
                 "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                 "torch-2.13.1-cp311-cp311-manylinux_2_28_aarch64.whl",
                 "ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_aarch64.whl"):
        (tmp_path / name).write_bytes(b"")
    site = WheelSite(LINUX_ARCHITECTURES["aarch64"], None, tmp_path, lambda line: None)
    assert site._in_folder("torch", "2.13.0").name.startswith("torch-2.13.0+cpu-")
    assert site._in_folder("ai-edge-litert", "2.3.0") is not None
    assert site._in_folder("torch", "2.12.0") is None
    x86 = WheelSite(LINUX_ARCHITECTURES["x86_64"], None, tmp_path, lambda line: None)
    assert x86._in_folder("torch", "2.13.0").name.endswith("_x86_64.whl")
