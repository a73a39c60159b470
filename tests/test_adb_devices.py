"""adb devices end to end: a real adb server and real adbd test devices (Debian's adbd on
this host), the plugin deploying and timing over adbutils as it would on a board."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REFERENCE_MODULE, TINY_CNN_MODULE

from pytest_aiotbench.devices import DeviceError
from pytest_aiotbench.devices.adb import AdbDevice, AdbOptions

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
    result.stdout.fnmatch_lines(["*measure stage: runner on device 'AIoT_Board' failed*",
                                 "*python runner crashed: killed by SIGSEGV*exit code 139*",
                                 "*Segmentation fault*"])


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
