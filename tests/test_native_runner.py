"""The native runner: built in this session from the installed wheels, run for real on the
local host and on an adbd "phone" whose PATH has no Python at all."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_CNN_MODULE

from pytest_aiotbench.devices import LocalDevice, RunnerFailed
from pytest_aiotbench.devices.adb import AdbDevice
from pytest_aiotbench.runner.aiot_runner import (
    median_confidence_bounds,
    median_relative_half_width,
)
from pytest_aiotbench.runner.native.build import (
    NativeBuilder,
    Target,
    frameworks_with_backends,
    main,
)
from pytest_aiotbench.runner.program import RunnerProgram
from pytest_aiotbench.runner.protocol import (
    PROTOCOL_VERSION,
    RunFailure,
    RunRequest,
    Timing,
    parse_result,
)

NATIVE = ["--aiot-runner=native"]


@pytest.fixture(scope="session")
def native_runners(artifact_cache):
    """Every backend built for this host, as the plugin builds them (and caches them)."""
    builder = NativeBuilder(artifact_cache, progress=lambda line: None)
    return {framework: builder.build(framework) for framework in frameworks_with_backends()}


def describe(runner, mode: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "LD_LIBRARY_PATH": str(runner.executable.parent.parent / "lib")}
    return subprocess.run([str(runner.executable), *([mode] if mode else [])], input=stdin,
                          text=True, env=env,
                          capture_output=True, timeout=60, check=False)


def test_every_backend_builds_into_a_bundle_that_starts(native_runners):
    assert set(native_runners) == {"onnxruntime", "tflite", "executorch", "pytorch-mobile"}
    for framework, runner in native_runners.items():
        assert runner.target == Target.host().name
        described = json.loads(describe(runner, "--describe").stdout)
        assert described == {"protocol_version": PROTOCOL_VERSION, "runner": "native",
                             "framework": framework}
    # The loader's name for each library, not the wheel's file name.
    assert [p.name for p in native_runners["onnxruntime"].libraries] == ["libonnxruntime.so.1"]
    assert {p.name for p in native_runners["executorch"].libraries} >= {
        "libexecutorch.so", "libexecutorch_backend_xnnpack.so"}


def test_a_second_build_comes_from_the_cache(native_runners, artifact_cache):
    again = NativeBuilder(artifact_cache, progress=lambda line: None).build("tflite")
    assert not again.built and again.executable == native_runners["tflite"].executable


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_native_statistics_take_the_same_ranks_as_the_python_runner(native_runners,
                                                                    confidence):
    rng = random.Random(7)
    for n in (1, 2, 5, 10, 11, 37, 100, 333, 1000):
        samples = [0.004 * (1 + abs(rng.gauss(0, 0.2))) for _ in range(n)]
        answer = describe(native_runners["tflite"], "--median-bounds",
                          json.dumps({"samples": samples, "confidence": confidence}))
        native = json.loads(answer.stdout)
        assert (native["lower"], native["upper"]) == median_confidence_bounds(n, confidence)
        assert native["relative_half_width"] == pytest.approx(
            median_relative_half_width(samples, confidence), rel=1e-12)


def test_the_native_runner_refuses_another_protocol_version(native_runners):
    answer = describe(native_runners["onnxruntime"], "", json.dumps({"framework": "x"}))
    failure = parse_result(answer.stdout)
    assert answer.returncode == 2 and isinstance(failure, RunFailure)
    assert failure.stage == "protocol" and "rebuild" in failure.error


def test_one_backend_failing_to_build_leaves_the_others_built(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no-headers"
    empty.mkdir()
    monkeypatch.setenv("AIOTBENCH_ONNXRUNTIME_INCLUDE", str(empty))
    code = main(["--framework", "onnxruntime,tflite", "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0
    assert "FAILED onnxruntime: the native onnxruntime runner failed to configure" in out
    assert "has no onnxruntime_c_api.h" in out
    assert "built  tflite" in out
    assert "1 of 2 backends failed; the others are built" in out


def test_a_library_missing_beside_the_runner_is_named(native_runners, tmp_path):
    runner = native_runners["onnxruntime"]
    program = RunnerProgram("native", runner.executable, ())  # the bundle left behind
    request = RunRequest("onnxruntime", "m.onnx", "p.npy", 1, Timing())
    with pytest.raises(RunnerFailed, match=r"shared library libonnxruntime\.so\.1 is missing"):
        LocalDevice().run(program, request, 60)


def test_the_local_matrix_through_the_native_runner(pytester, run_plugin, native_runners):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    pytester.makeini("[pytest]\naiot_runner = native\n")  # the ini key, as CI configs use
    result, document = run_plugin("-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["aiotbench: devices local;*runner native",
                                 "*runner*peak MB*", "*tiny_cnn*onnxruntime*native*"])
    for workload in document["devices"]["local"]["workloads"]:
        assert workload["runner"] == "native" and workload["validity"]["passed"]
        assert workload["peak_rss_after_timing_bytes"] >= workload["peak_rss_after_load_bytes"]
        assert workload["native_runner"]["target"] == Target.host().name
        assert workload["runner_runtime"].startswith("C++17 native runner")
    # Asked for the device's peak, the native runner says it has no probe.
    peak = document["devices"]["local"]["facts"]["peak_compute"]
    assert not peak["measured"] and "the native runner has no peak probe" in peak["method"]
    # The command line wins over the ini file.
    result, document = run_plugin("--aiot-runner=python", "--aiot-framework=onnxruntime")
    result.assert_outcomes(passed=1)
    assert document["devices"]["local"]["workloads"][0]["runner"] == "python"
    assert document["devices"]["local"]["facts"]["peak_compute"]["measured"]


def test_a_crashing_native_runner_errors_its_item_with_the_signal(pytester, run_plugin,
                                                                  native_runners, monkeypatch):
    # A real SIGSEGV raised inside the real binary, in ONNX Runtime's runner only.
    monkeypatch.setenv("AIOT_RUNNER_FAULT", "onnxruntime:segfault-after-load")
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin(*NATIVE, "--aiot-framework=onnxruntime,tflite")
    result.assert_outcomes(passed=1, errors=1)  # the measure stage gave no measurement
    result.stdout.fnmatch_lines(["*native runner crashed: killed by SIGSEGV (signal 11*",
                                 "*runner stderr*"])
    result.stdout.fnmatch_lines(["ranking by VIPS:*"])
    statuses = {w["framework"]: w["status"] for w in document["devices"]["local"]["workloads"]}
    assert statuses == {"onnxruntime": "failed", "tflite": "passed"}


# --------------------------------------------------------------------- the phone
@pytest.fixture(scope="session")
def phone(adbd_factory):
    """An adbd device whose shell has a toolbox and no Python: it stands in for a phone."""
    return adbd_factory("AIoT Phone", python=None)


def workdir_option(tmp_path: Path) -> str:
    return f"--aiot-adb-workdir={tmp_path}/phone work"


def test_the_phone_has_no_python(phone, tmp_path):
    device = AdbDevice(phone.serial, workdir=str(tmp_path / "w"))
    try:
        assert device.facts()["python"] is None
        assert device.shell("python3 -c 1").returncode != 0
    finally:
        device.close()


def test_the_reference_networks_are_measured_on_the_phone_natively(
        pytester, run_plugin, phone, native_runners, tmp_path):
    result, document = run_plugin(
        "-v", "--pyargs", "pytest_aiotbench.suite", f"--aiot-device={phone.serial}",
        "--aiot-network=squeezenet1_1,mobilenet_v2", "--aiot-cooldown=0",
        workdir_option(tmp_path))
    result.assert_outcomes(passed=2 * len(native_runners))
    rows = document["devices"]["AIoT_Phone"]["workloads"]
    assert {(w["network"], w["framework"]) for w in rows} == {
        (n, f) for n in ("squeezenet1_1", "mobilenet_v2") for f in native_runners}
    for workload in rows:
        assert workload["runner"] == "native", workload["error"]
        assert workload["validity"]["passed"]
        assert workload["peak_rss_after_load_bytes"] > 0
    deploy = document["devices"]["AIoT_Phone"]["facts"]["deploy"]
    assert deploy["pushed"] >= 4 + 8 + 2  # runners and libraries, artifacts, probes


def test_digits_through_the_native_runner_on_the_phone(pytester, run_plugin, phone,
                                                       native_runners, digits_set, tmp_path):
    pytester.makepyfile(test_digits=digits_set["module"])
    result, document = run_plugin(f"--aiot-device={phone.serial}", "--aiot-cooldown=0",
                                  f"--aiot-dataset={digits_set['val']}", "--aiot-images=100",
                                  workdir_option(tmp_path))
    result.assert_outcomes(passed=len(native_runners))
    result.stdout.fnmatch_lines(["e2e ms[*]: native runner rows exclude JPEG decoding*"])
    for workload in document["devices"]["AIoT_Phone"]["workloads"]:
        assert workload["runner"] == "native" and workload["decoded_on_device"] is False
        assert workload["accuracy_source"] == "labelled images" and workload["images"] == 100
        assert workload["top1"] >= 0.9


def test_a_library_missing_on_the_phone_is_named(phone, native_runners, tmp_path):
    runner = native_runners["executorch"]
    kept = tuple(p for p in runner.libraries if p.name != "libexecutorch_threadpool.so")
    device = AdbDevice(phone.serial, workdir=str(tmp_path / "w"))
    try:
        request = RunRequest("executorch", "m.pte", "p.npy", 1, Timing())
        with pytest.raises(RunnerFailed,
                           match=r"shared library libexecutorch_threadpool\.so is missing"):
            device.run(RunnerProgram("native", runner.executable, kept), request, 60)
    finally:
        device.close()


def test_an_android_phone_without_a_native_build_is_a_skip_naming_the_command(
        pytester, run_plugin, adbd_factory, tmp_path):
    android = adbd_factory("Android Phone", python=None,
                           props={"ro.build.version.release": "14",
                                  "ro.product.cpu.abi": "arm64-v8a"})
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, _ = run_plugin("-rs", f"--aiot-device={android.serial}", "--aiot-cooldown=0",
                           "--aiot-framework=onnxruntime", workdir_option(tmp_path))
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([
        "SKIPPED*Android_Phone* (android-arm64-v8a) has no Python with onnxruntime*"
        "aiotbench-build-runner --framework onnxruntime --android-abi arm64-v8a*"])
