"""The loader route: a Linux build of the native runner with the glibc it was linked against,
started through that glibc's own loader, for devices whose C library cannot load it (an
Android phone's bionic, musl, an older glibc). Run here on the host for real (its own build
with the host's glibc bundled, started through the bundled ld.so); on emulated phones in
tests/test_android_phone.py."""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil

import numpy as np
import pytest
from conftest import onnx_chain
from probe_files import float_input

from pytest_aiotbench.devices import LocalDevice, RunnerFailed
from pytest_aiotbench.devices.adb import c_library, mount_of
from pytest_aiotbench.devices.facts import DeviceFacts
from pytest_aiotbench.runner.native import elf
from pytest_aiotbench.runner.native.build import NativeBuilder, glibc_release
from pytest_aiotbench.runner.native.targets import (
    LIBC_DEVICE,
    Target,
    TargetUnsupported,
)
from pytest_aiotbench.runner.program import RunnerProgram, needs_own_glibc
from pytest_aiotbench.runner.protocol import RunRequest, RunResult, Timing

QUICK = Timing(warmup_s=0.01, min_time_s=0.05, max_time_s=0.5, min_samples=3)


@pytest.fixture(scope="module")
def host_runner(artifact_cache):
    return NativeBuilder(artifact_cache, progress=lambda line: None).build("onnxruntime")


@pytest.fixture(scope="module")
def bundled(artifact_cache, host_runner):
    """The host's ONNX Runtime runner with the host's glibc, as a musl board would get it."""
    builder = NativeBuilder(artifact_cache, progress=lambda line: None)
    return builder.with_own_glibc(host_runner, Target.host())


def program_of(runner) -> RunnerProgram:
    return RunnerProgram("native", runner.executable, runner.libraries, runner)


def test_the_bundle_carries_the_c_library_and_its_loader(bundled, host_runner):
    interpreter = elf.header(host_runner.executable).interpreter
    assert bundled.loader is not None and bundled.loader.name == interpreter.rsplit("/")[-1]
    names = {path.name for path in bundled.libraries}
    # The host build leaves libc, libm and libstdc++ to the system: here they come along.
    assert {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libonnxruntime.so.1"} <= names
    assert bundled.loader.name not in names  # it starts the runner; it is no library to map
    release = glibc_release(bundled.loader.parent / "libc.so.6")
    assert bundled.libc == f"glibc {release}, bundled"
    assert host_runner.libc == LIBC_DEVICE
    described = bundled.to_json()
    assert described["libc"] == bundled.libc and described["loader"] == bundled.loader.name
    # Everything it needs is in it: every DT_NEEDED of every file is a file of the bundle.
    files = {path.name for path in bundled.libraries} | {bundled.loader.name}
    for path in (bundled.executable, *bundled.libraries):
        assert set(elf.dynamic_info(path).needed) <= files, path


def test_a_second_bundle_comes_from_the_cache(artifact_cache, host_runner, bundled):
    again = NativeBuilder(artifact_cache, progress=lambda line: None).with_own_glibc(
        host_runner, Target.host())
    assert not again.built and again.executable == bundled.executable


def test_the_bundled_loader_runs_the_runner_with_the_same_answers(bundled, host_runner,
                                                                  tmp_path):
    """Started as `ld.so --library-path LIBS runner`, with nothing of the system's C library
    asked for: the probe outputs are bit-identical to the plain build's."""
    model = tmp_path / "chain.onnx"
    onnx_chain(4, model)
    probes = tmp_path / "probes.npy"
    np.save(probes, np.random.default_rng(0).random((2, 4, 4, 4), np.float32))
    request = RunRequest("onnxruntime", str(model), float_input(str(probes)), 1, QUICK)
    device = LocalDevice()
    answers = {}
    for name, runner in (("plain", host_runner), ("bundled", bundled)):
        result = device.run(program_of(runner), request, 120)
        assert isinstance(result, RunResult) and len(result.samples_s) >= 3
        answers[name] = np.asarray(result.probe_outputs)
    assert np.array_equal(answers["plain"], answers["bundled"])
    argv, env = device._native_command(program_of(bundled), str(bundled.executable))
    assert argv[:2] == [str(bundled.loader), "--library-path"] and not env


def test_a_loader_the_device_cannot_start_is_named_with_its_answer(bundled, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundled.executable.parent.parent, copy)
    loader = copy / "lib" / bundled.loader.name
    loader.chmod(0o644)  # as on a mount that allows no executables
    runner = dataclasses.replace(
        bundled, executable=copy / "bin" / bundled.executable.name, loader=loader,
        libraries=tuple(copy / "lib" / path.name for path in bundled.libraries))
    request = RunRequest("onnxruntime", "m.onnx", float_input("p.npy"), 1, QUICK)
    with pytest.raises(RunnerFailed) as raised:
        LocalDevice().run(program_of(runner), request, 60)
    message = str(raised.value)
    assert raised.value.stage == "start"
    assert f"cannot start the bundled loader {loader}" in message, message
    assert "exit code 126" in message and "Permission denied" in message, message


def test_the_glibc_a_file_needs_is_read_from_its_symbol_versions(host_runner):
    """The host built it against its own glibc: it needs at most that release."""
    needed = host_runner.glibc_needed()
    host = elf.glibc_version(platform.libc_ver()[1])
    assert needed is not None and host is not None and (2, 17) <= needed <= host
    assert elf.glibc_version("GLIBC_2.34") == (2, 34)
    assert elf.glibc_version("GLIBC_PRIVATE") is None


@pytest.mark.parametrize("libc, own", [
    ("glibc 2.36", False), ("glibc 2.17", True), ("musl 1.2.4", True), ("none found", True),
    ("glibc", False), (None, False)])
def test_a_board_gets_its_own_glibc_where_its_c_library_cannot_load_the_build(
        host_runner, libc, own):
    facts = DeviceFacts(kind="adb", alias="board", machine="x86_64", libc=libc)
    assert needs_own_glibc(facts, host_runner) is own


@pytest.mark.parametrize("answers, machine, found", [
    ({"/lib/ld-linux-aarch64.so.1": "ld.so (Debian GLIBC 2.36-9+deb12u4) stable release "
                                    "version 2.36."}, "aarch64", "glibc 2.36"),
    ({"/lib/ld-musl-aarch64.so.1": "Version 1.2.4"}, "aarch64", "musl 1.2.4"),
    ({"/lib/ld-linux-armhf.so.3": "ld.so (GNU libc) stable release version 2.31.",
      "/lib/ld-linux-aarch64.so.1": "ld.so (GNU libc) stable release version 2.28."},
     "aarch64", "glibc 2.28"),
    ({"/lib/ld-linux-aarch64.so.1": ""}, "aarch64", "glibc"),
    ({}, "aarch64", "none found"),
])
def test_a_device_s_c_library_is_read_from_its_loaders(answers, machine, found):
    assert c_library(answers, machine) == found


MOUNTS = """\
/dev/root / ext4 ro,seclabel,relatime 0 0
tmpfs /data tmpfs rw,nosuid,nodev 0 0
/dev/fuse /storage/emulated fuse rw,nosuid,nodev,noexec,noatime 0 0
tmpfs /mnt/my\\040disk tmpfs rw,noexec 0 0
"""


@pytest.mark.parametrize("path, found", [
    ("/data/local/tmp/aiotbench", ("/data", "rw,nosuid,nodev")),
    ("/storage/emulated/0/aiot", ("/storage/emulated", "rw,nosuid,nodev,noexec,noatime")),
    ("/datax/w", ("/", "ro,seclabel,relatime")),
    ("/mnt/my disk/w", ("/mnt/my disk", "rw,noexec")),
])
def test_the_mount_holding_a_folder_is_found(path, found):
    assert mount_of(MOUNTS, path) == found


def test_a_32_bit_phone_has_no_loader_route_naming_its_abi():
    with pytest.raises(TargetUnsupported, match=r"ABI armeabi-v7a runs a 32-bit userland.*"
                                                r"no armv7 wheels"):
        Target("android", "armeabi-v7a").linux()
    assert Target("android", "arm64-v8a").linux() == Target("linux", "aarch64")


def test_a_build_s_manifest_says_its_c_library(host_runner, bundled):
    for runner in (host_runner, bundled):
        manifest = json.loads((runner.executable.parent.parent / "manifest.json").read_text())
        assert manifest["libc"] == runner.libc
    assert json.loads((bundled.executable.parent.parent / "manifest.json").read_text())[
        "loader"] == f"lib/{bundled.loader.name}"
