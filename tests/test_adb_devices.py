"""adb devices end to end: a real adb server and real adbd test devices (Debian's adbd on
this host), the plugin deploying and timing over adbutils as it would on a board."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REFERENCE_MODULE, TINY_CNN_MODULE
from probe_files import float_input
from test_device_errors import tiny_elf

from pytest_aiotbench.devices import (
    DeviceError,
    LocalDevice,
    RunnerFailed,
    UnknownDeviceError,
    select_devices,
)
from pytest_aiotbench.devices.adb import AdbDevice, AdbOptions
from pytest_aiotbench.runner.native import elf
from pytest_aiotbench.runner.native.build import NativeRunner
from pytest_aiotbench.runner.program import RunnerProgram
from pytest_aiotbench.runner.protocol import RunRequest, Timing

ADB_FAST = ["--aiot-cooldown=0"]


def workdir_option(tmp_path: Path) -> str:
    # A space and a quote: nothing may reach the device's shell unquoted.
    return f"--aiot-adb-workdir={tmp_path}/aiot work's dir"


def test_device_facts_and_alias_come_from_the_device(board, tmp_path):
    device = AdbDevice(board.serial, AdbOptions(workdir=str(tmp_path / "work")))
    try:
        assert device.alias == "AIoT_Board"  # the model name, not the serial
        facts = device.facts()
        assert facts.model == "AIoT Board" and facts.serial == board.serial
        assert facts.cores >= 1 and facts.memory_bytes > 0
        assert facts.python and facts.packages["onnxruntime"]
        assert facts.kernel and facts.abi
    finally:
        device.close()


def test_the_load_on_a_device_s_cores_is_read_there_in_one_shell_call(board, tmp_path):
    """The test board's cores are this host's: a busy process on one of them shows in the
    share of the cores the runner would be timed on (all: the board has no big cores)."""
    from test_competing_load import busy_processes

    device = AdbDevice(board.serial, AdbOptions(workdir=str(tmp_path / "work")))
    try:
        with busy_processes(min(os.sched_getaffinity(0))):
            load = device.load_window(0.3)
        assert load is not None and load.own_ticks == 0
        assert load.cores == tuple(range(os.cpu_count()))
        assert load.others_share >= 0.9 / len(load.cores)
    finally:
        device.close()


def test_matrix_runs_on_local_and_on_the_adb_device(pytester, run_plugin, board, tmp_path):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin("-v", "--aiot-device=all", workdir_option(tmp_path),
                                  *ADB_FAST)
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*tiny_cnn-executorch-AIoT_Board? PASSED*"])
    result.stdout.fnmatch_lines(["device AIoT_Board*", "*tiny_cnn*", "VIPS*",
                                 "device local*", "*", "*", "*tiny_cnn*"], consecutive=False)
    result.stdout.fnmatch_lines(["ranking by VIPS:*", "*1. *", "*2. *"])
    assert set(document["devices"]) == {"local", "AIoT_Board"}
    board_facts = document["devices"]["AIoT_Board"]["facts"]
    assert board_facts["serial"] == board.serial and board_facts["kind"] == "adb"
    assert board_facts["deploy"]["pushed"] >= 4
    for workload in document["devices"]["AIoT_Board"]["workloads"]:
        assert workload["status"] == "passed", workload["error"]
        assert "aiot work's dir" not in workload["artifact"]["path"]  # host path is recorded
    assert len(document["ranking"]) == 2
    # What the session pushed is removed at the end.
    leftovers = list((tmp_path / "aiot work's dir" / "files").glob("*/*"))
    assert leftovers == []


def test_a_second_run_skips_what_is_already_on_the_device(pytester, run_plugin, board,
                                                          tmp_path):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    args = ["--aiot-device=AIoT_Board", "--aiot-framework=onnxruntime,tflite",
            "--aiot-keep-deployed", workdir_option(tmp_path), *ADB_FAST]
    first, document = run_plugin(*args)
    first.assert_outcomes(passed=2)
    pushed_first = document["devices"]["AIoT_Board"]["facts"]["deploy"]
    second, document = run_plugin(*args)
    second.assert_outcomes(passed=2)
    pushed_second = document["devices"]["AIoT_Board"]["facts"]["deploy"]
    assert pushed_first["pushed"] >= 4  # runner, probes, two artifacts (and requests)
    assert pushed_second["pushed"] == 0 and pushed_second["bytes_pushed"] == 0
    assert pushed_second["skipped_same_hash"] >= 4
    second.stdout.fnmatch_lines(["deploy to AIoT_Board: 0 files pushed*already there*"])


def test_a_device_killed_mid_session_fails_its_items_and_the_rest_is_reported(
        pytester, run_plugin, adbd_factory, tmp_path):
    doomed = adbd_factory("Doomed Phone")
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    # The device vanishes right after its first item: adbd killed, no disconnect.
    pytester.makeconftest(f'''
import os, signal

def pytest_runtest_logreport(report):
    if report.when == "call" and "Doomed_Phone" in report.nodeid:
        os.killpg({doomed.process.pid}, signal.SIGKILL)
''')
    result, document = run_plugin("-v", f"--aiot-device=local,{doomed.serial}",
                                  "--aiot-framework=onnxruntime,tflite,executorch",
                                  workdir_option(tmp_path), *ADB_FAST)
    doomed.kill()
    outcomes = result.parseoutcomes()
    # Its last two items error in setup, at the deploy stage: no measurement was had.
    assert outcomes["passed"] == 3 + 1 and outcomes["errors"] == 2
    result.stdout.fnmatch_lines(["*deploy stage: tflite to Doomed_Phone*"])
    result.stdout.fnmatch_lines(["*Doomed_Phone*disappeared*"])
    assert all(w["status"] == "passed" for w in document["devices"]["local"]["workloads"])
    doomed_rows = document["devices"]["Doomed_Phone"]["workloads"]
    assert [w["status"] for w in doomed_rows] == ["passed", "failed", "failed"]
    assert "Doomed_Phone" in doomed_rows[1]["error"]
    assert "lost earlier in this session" in doomed_rows[2]["error"]
    result.stdout.fnmatch_lines(["ranking by VIPS:*"])


def test_a_runner_crash_on_the_device_shows_its_stderr(pytester, run_plugin, board,
                                                       tmp_path):
    crashing = tmp_path / "crashing python"
    crashing.write_text("#!/bin/sh\necho 'Fatal Python error: Segmentation fault' >&2\n"
                        "exit 139\n")
    crashing.chmod(0o755)
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, _ = run_plugin("--aiot-device=AIoT_Board", "--aiot-framework=onnxruntime",
                           "--aiot-runner=python", f"--aiot-adb-python={crashing}",
                           workdir_option(tmp_path), *ADB_FAST)
    # No measurement came back: an error of the measure stage, not a failed check.
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*measure stage: runner on device 'AIoT_Board' failed at "
                                 "runner: the python runner crashed: killed by SIGSEGV*exit "
                                 "code 139*", "*Segmentation fault*"])


def test_a_framework_missing_on_the_device_is_a_skip_naming_what_to_install(
        pytester, run_plugin, board, tmp_path, python_without_frameworks):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    args = ["--aiot-device=AIoT_Board", "--aiot-framework=onnxruntime,tflite",
            f"--aiot-adb-python={python_without_frameworks}", workdir_option(tmp_path),
            *ADB_FAST]
    result, _ = run_plugin("-rs", "--aiot-runner=python", *args)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*AIoT_Board*onnxruntime is not installed here*install*"])
    # With the runner left to choose, the native runner measures what Python cannot.
    result, document = run_plugin(*args)
    result.assert_outcomes(passed=2)
    assert {w["runner"] for w in document["devices"]["AIoT_Board"]["workloads"]} == {"native"}


def test_two_boards_with_different_cores_are_ranked(pytester, run_plugin, board,
                                                    adbd_factory, tmp_path):
    small = adbd_factory("Small Board", cores="0")
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin(f"--aiot-device=AIoT_Board,{small.serial}",
                                  "--aiot-framework=onnxruntime", workdir_option(tmp_path),
                                  *ADB_FAST)
    result.assert_outcomes(passed=2)
    assert document["devices"]["Small_Board"]["facts"]["cores"] == 1
    assert document["devices"]["AIoT_Board"]["facts"]["cores"] == 2
    assert document["devices"]["Small_Board"]["workloads"][0]["threads"] == 1
    assert sorted(document["ranking"]) == ["AIoT_Board", "Small_Board"]


def test_unknown_and_offline_devices_are_named(pytester, run_plugin, board, adbd_factory):
    # Devices are resolved once the items are collected; a module registering no network of
    # its own lets this process collect it.
    pytester.makepyfile(test_reference=REFERENCE_MODULE)
    result, _ = run_plugin("--aiot-device=Pixel_9", json_report=False, in_process=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown device 'Pixel_9'; attached: local, *AIoT_Board*"])

    (pytester.path / "test_reference.py").unlink()
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    gone = adbd_factory("Gone Phone")
    gone.kill()  # killed without a disconnect: the server keeps it 'offline' for a while
    result, _ = run_plugin("--collect-only", "--aiot-device=all")
    result.stdout.fnmatch_lines([f"*{gone.serial}*offline*"])


def test_a_board_named_by_its_address_is_connected_and_one_that_is_not_there_is_named(
        adbd_factory):
    """As `adb connect HOST:PORT` would: the board is connected and selected; an address
    nobody answers is an error naming it and adb's answer, before anything runs."""
    from adbd_testbed import adb_client, free_port

    networked = adbd_factory("Network Board", python=None)
    adb_client().disconnect(networked.serial)
    chosen = select_devices([networked.serial])
    try:
        assert [device.serial for device in chosen.devices] == [networked.serial]
    finally:
        for device in chosen.devices:
            device.close()
    nobody = f"127.0.0.1:{free_port()}"
    with pytest.raises(UnknownDeviceError, match=rf"device '{nobody}' cannot be reached: "
                                                 rf"adb connect {nobody}: "):
        select_devices([nobody])


def test_a_device_vanishing_as_it_is_listed_never_stops_a_selection_without_it(
        board, adbd_factory):
    """Listed ready, then gone before it answers its model: the serial asked for is
    selected, and the vanished device is only listed as unusable (it was a usage error)."""
    from adbd_testbed import adb_client

    frozen = adbd_factory("Frozen Phone", python=None)
    os.killpg(frozen.process.pid, signal.SIGSTOP)  # still listed ready; answers nothing
    vanishing = threading.Timer(2.0, frozen.kill)  # gone while it is being asked
    vanishing.start()
    try:
        chosen = select_devices([board.serial])
    finally:
        vanishing.join()
        adb_client().disconnect(frozen.serial)
    try:
        assert [device.serial for device in chosen.devices] == [board.serial]
        assert f"{frozen.serial} (vanished)" in chosen.unavailable
    finally:
        for device in chosen.devices:
            device.close()


def test_a_dead_adb_server_is_a_usage_error(pytester, run_plugin):
    pytester.makepyfile(test_reference=REFERENCE_MODULE)
    result, _ = run_plugin("--aiot-device=all", "--aiot-adb-server=127.0.0.1:9",
                           json_report=False, in_process=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot reach the adb server at 127.0.0.1:9*"])


def test_calls_on_a_vanished_device_raise_device_errors(adbd_factory, tmp_path):
    short_lived = adbd_factory("Short Lived")
    device = AdbDevice(short_lived.serial, AdbOptions(workdir=str(tmp_path / "w")))
    short_lived.kill()
    with pytest.raises(DeviceError) as error:
        device.shell("true")
    assert "Short_Lived" in str(error.value)
    with pytest.raises(DeviceError, match="lost earlier"):
        device.shell("true")
    device.close()


def test_labelled_images_travel_to_the_device_and_accuracy_is_measured_there(
        pytester, run_plugin, board, digits_set, tmp_path):
    pytester.makepyfile(test_digits=digits_set["module"])
    result, document = run_plugin("--aiot-device=AIoT_Board", f"--aiot-dataset={digits_set['val']}",
                                  "--aiot-images=100", "--aiot-framework=onnxruntime,tflite",
                                  "--aiot-variant=fp32,int8", workdir_option(tmp_path),
                                  *ADB_FAST)
    result.assert_outcomes(passed=4)
    device = document["devices"]["AIoT_Board"]
    assert device["facts"]["deploy"]["pushed"] >= 100  # the images went to the device
    for workload in device["workloads"]:
        assert workload["accuracy_source"] == "labelled images" and workload["images"] == 100
        assert workload["top1"] >= 0.85


# ------------------------------------------------------------ a full work folder
@pytest.fixture
def small_folder(tmp_path):
    """A work folder that is a 64 KiB tmpfs, as on a board whose /tmp is tiny."""
    folder = tmp_path / "small work"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {mounted.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_a_full_work_folder_names_the_space_needed_and_free_and_the_rest_is_reported(
        pytester, run_plugin, board, small_folder):
    # 40 KiB taken already: the ONNX model (18 KiB) fits, the probe inputs (48 KiB) do not.
    (small_folder / "someone else's file").write_bytes(bytes(40 * 1024))
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin("--aiot-device=local,AIoT_Board", "--aiot-runner=python",
                                  "--aiot-framework=onnxruntime,tflite",
                                  f"--aiot-adb-workdir={small_folder}", *ADB_FAST)
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines([
        f"deploy stage: onnxruntime to AIoT_Board: device 'AIoT_Board' ({board.serial}): no "
        f"space for tiny_cnn-input-probes-*.npy (* KiB) in {small_folder}: * KiB free; free space "
        "on the device or point --aiot-adb-workdir at a larger folder",
        "*deploy stage: tflite to AIoT_Board: *no space for tiny_cnn.tflite (10 KiB) in *"])
    assert "AdbError" not in result.stdout.str()  # refused before the push: adb's FAIL unseen
    assert all(w["status"] == "passed" for w in document["devices"]["local"]["workloads"])
    rows = document["devices"]["AIoT_Board"]["workloads"]
    assert [w["status"] for w in rows] == ["failed", "failed"]
    assert all("no space for" in w["error"] for w in rows)
    result.stdout.fnmatch_lines(["ranking by VIPS:*"])
    # Nothing of the session is left in the folder; what was there before stays.
    assert sorted(p.name for p in small_folder.iterdir()) == ["files", "someone else's file"]
    assert list((small_folder / "files").iterdir()) == []


def test_a_push_that_fails_is_explained_by_df_asked_then(adbd_factory, small_folder,
                                                         tmp_path):
    board = adbd_factory("Flaky Df Board")
    # This board's df fails once: the check before the push cannot tell, the push fails (adb
    # says a bare FAIL) and df, asked again, explains it.
    state = tmp_path / "df asked"
    df = board.root / "bin" / "df"
    df.write_text(f"""#!/bin/sh\nif [ -e '{state}' ]; then exec {shutil.which("df")} "$@"; fi
touch '{state}'; echo 'df: cannot read table of mounted file systems' >&2; exit 1\n""")
    df.chmod(0o755)
    big = tmp_path / "concnet.tflite"
    big.write_bytes(os.urandom(100 * 1024))
    small = tmp_path / "labels.txt"
    small.write_text("cat\ndog\n")
    device = AdbDevice(board.serial, AdbOptions(workdir=str(small_folder)))
    try:
        with pytest.raises(DeviceError) as failed_push:
            device.stage(big)
        message = str(failed_push.value)
        assert (f"device 'Flaky_Df_Board' ({board.serial}): no space for concnet.tflite "
                f"(100 KiB) in {small_folder}: 64 KiB free; free space on the device or point "
                "--aiot-adb-workdir at a larger folder (adb: push concnet.tflite: AdbError: "
                "FAIL)") == message
        # df answers now: refused before the push, nothing sent.
        with pytest.raises(DeviceError, match=r"no space for concnet.tflite \(100 KiB\) in "
                                              r".*: 64 KiB free; free space") as refused:
            device.stage(big)
        assert "AdbError" not in str(refused.value)
        # The device is not taken for lost, and the partial file took no space: a file that
        # fits still goes.
        assert device.stage(small).endswith("/labels.txt")
        assert device.deploy_stats.pushed == 1
    finally:
        device.close()
    assert list((small_folder / "files").iterdir()) == []


# ------------------------------------------------ a binary the device cannot execute
def native_program(executable: Path, target: str) -> RunnerProgram:
    runner = NativeRunner("onnxruntime", target, executable, (), cache_key="test", built=False,
                          build_s=0.0, compiler="test")
    return RunnerProgram("native", executable, (), runner)


REQUEST = RunRequest("onnxruntime", "model.onnx", float_input("probes.npy"), 1, Timing())
#: The host's machine (the adbd boards run on it), its e_machine and loader.
HOST = platform.machine()
E_MACHINES = {"x86_64": 62, "aarch64": 183}
#: An architecture the boards here are not, with its e_machine, loader and cross compiler.
OTHER = (("x86_64", 62, "/lib64/ld-linux-x86-64.so.2", "x86_64-linux-gnu-gcc")
         if HOST == "aarch64" else
         ("aarch64", 183, "/lib/ld-linux-aarch64.so.1", "aarch64-linux-gnu-gcc"))


@pytest.fixture(params=["tiny ELF", "compiled"])
def foreign_executable(request, tmp_path) -> Path:
    """A runner binary for another architecture than this host's (and its boards')."""
    machine, number, loader, cross_compiler = OTHER
    path = tmp_path / "aiot_runner_onnxruntime"
    if request.param == "tiny ELF":
        path.write_bytes(tiny_elf(number, loader))
    else:
        compiler = shutil.which(cross_compiler)
        if compiler is None:
            pytest.skip(f"no {cross_compiler} here")
        source = tmp_path / "hello.c"
        source.write_text('#include <stdio.h>\nint main(void) { puts("{}"); return 0; }\n')
        subprocess.run([compiler, "-o", str(path), str(source)], check=True)
    path.chmod(0o755)
    assert elf.machine(path) == machine
    return path


def test_a_runner_for_another_architecture_is_refused_before_the_push(board, tmp_path,
                                                                      foreign_executable):
    machine, _, loader, _ = OTHER
    program = native_program(foreign_executable, f"linux-{machine}")
    device = AdbDevice(board.serial, AdbOptions(workdir=str(tmp_path / "work")))
    try:
        with pytest.raises(RunnerFailed) as error:
            device.run(program, REQUEST, 30)
        assert device.deploy_stats.pushed == 0  # said before anything was pushed
    finally:
        device.close()
    assert error.value.stage == "start"
    message = str(error.value)
    assert message.startswith(
        "runner on device 'AIoT_Board' failed at start: the native onnxruntime runner is built "
        f"for linux-{machine}, a 64-bit {machine} ELF (loader {loader}), but the device is "
        f"{HOST} (uname -m {HOST}): it cannot execute that binary. Use a runner built for "
        f"linux-{HOST} (`aiotbench-build-runner --framework onnxruntime --target "
        f"linux-{HOST}`), or the Python runner (--aiot-runner=python)"), message
    # The host says the same of it, in the same words.
    with pytest.raises(RunnerFailed, match=rf"built for linux-{machine}, a 64-bit {machine} "
                                           rf"ELF.*but the device is {HOST}"):
        LocalDevice().run(program, REQUEST, 30)


@pytest.mark.parametrize("case", ["loader missing", "not an executable"])
def test_a_runner_the_device_cannot_execute_says_why_not_an_exit_code(board, tmp_path, case):
    if HOST not in E_MACHINES:
        pytest.skip(f"no ELF of this host's machine ({HOST}) is made here")
    runner = tmp_path / "aiot_runner_onnxruntime"
    if case == "loader missing":
        # The device's machine, but a loader its userland lacks: as an aarch64 runner on a
        # board whose 64-bit kernel runs a 32-bit userland (no /lib/ld-linux-aarch64.so.1).
        runner.write_bytes(tiny_elf(E_MACHINES[HOST], "/lib/ld-linux-aiotbench-absent.so.1"))
    else:
        # Not an ELF the kernel takes (ENOEXEC): `timeout` hands it to sh as a script.
        runner.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + b"(garbage")
    program = native_program(runner, f"linux-{HOST}")
    device = AdbDevice(board.serial, AdbOptions(workdir=str(tmp_path / "work")))
    try:
        with pytest.raises(RunnerFailed) as error:
            device.run(program, REQUEST, 30)
    finally:
        device.close()
    assert error.value.stage == "start"
    message = str(error.value).split("\n--- runner stderr")[0]
    assert "exited with code" not in message
    if case == "loader missing":
        host_loader = elf.header(Path(sys.executable).resolve()).interpreter
        assert message == (
            "runner on device 'AIoT_Board' failed at start: the native onnxruntime runner "
            f"(built for linux-{HOST}, a 64-bit {HOST} ELF (loader "
            "/lib/ld-linux-aiotbench-absent.so.1)) cannot be executed: the device has no "
            "/lib/ld-linux-aiotbench-absent.so.1, the dynamic loader it needs, although its "
            f"kernel says {HOST} (uname -m): its userland is of another kind (it has "
            f"{host_loader} ({HOST}, glibc)). Use a runner built for that userland, or a "
            f"system image whose userland is {HOST} with glibc")
    else:
        assert message.startswith(
            "runner on device 'AIoT_Board' failed at start: the native onnxruntime runner (built "
            f"for linux-{HOST}) cannot be executed by the device (uname -m {HOST}): "), message
        assert "aiot_runner_onnxruntime" in message


def test_a_push_that_fails_for_another_reason_than_space_is_tried_again(
        adbd_factory, tmp_path):
    """adb's sync fails now and then with a bare FAIL; a push that fails with room to spare
    goes once more. This board's df, asked right before the first push, puts a file where
    the push's folder should be (the push fails); asked why after the failure, it puts the
    folder back: the second push goes through."""
    from pytest_aiotbench.artifacts.cache import sha256_file

    board = adbd_factory("Flaky Push Board")
    model = tmp_path / "model.tflite"
    model.write_bytes(os.urandom(20 * 1024))
    workdir = tmp_path / "work"
    folder = workdir / "files" / sha256_file(model)[:16]
    asked = tmp_path / "df asked"
    df = board.root / "bin" / "df"
    df.write_text(f"""#!/bin/sh
if [ -e '{asked}' ]; then rm -f '{folder}'; mkdir -p '{folder}'
else rmdir '{folder}' && touch '{folder}'; fi
touch '{asked}'; exec {shutil.which("df")} "$@"\n""")
    df.chmod(0o755)
    device = AdbDevice(board.serial, AdbOptions(workdir=str(workdir)))
    try:
        assert device.stage(model) == str(folder / model.name)
        assert (folder / model.name).read_bytes() == model.read_bytes()
        assert (device.deploy_stats.pushed, device.deploy_stats.retried) == (1, 1)
        # A folder that stays a file fails both tries, said as it is.
        other = tmp_path / "other.onnx"
        other.write_bytes(os.urandom(1024))
        blocked = workdir / "files" / sha256_file(other)[:16]
        blocked.write_text("not a folder")
        with pytest.raises(DeviceError, match=r"push other\.onnx: .*not a lack of space"):
            device.stage(other)
        assert (device.deploy_stats.pushed, device.deploy_stats.retried) == (1, 1)
    finally:
        device.close()
