"""The native runner: built in this session from the installed wheels, run for real on the
local host and on an adbd "phone" whose PATH has no Python at all."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CNN_MODULE, onnx_chain
from probe_files import float_input
from test_runner_protocol import check_message, check_result_keys

from pytest_aiotbench.devices import LocalDevice, RunnerFailed
from pytest_aiotbench.devices.adb import AdbDevice, AdbOptions
from pytest_aiotbench.runner.native import build
from pytest_aiotbench.runner.native.build import (
    NATIVE_DIR,
    TEST_FAULTS_ENV,
    NativeBuilder,
    find_cmake,
    main,
    nlohmann_json_include,
)
from pytest_aiotbench.runner.native.targets import Target
from pytest_aiotbench.runner.program import RUNNER_SCRIPT, RunnerProgram
from pytest_aiotbench.runner.protocol import (
    PROTOCOL_VERSION,
    ProfileRequest,
    RunFailure,
    RunRequest,
    RunResult,
    Timing,
    parse_result,
)

NATIVE = ["--aiot-runner=native"]


def describe(runner, mode: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **env, "LD_LIBRARY_PATH": str(runner.executable.parent.parent / "lib")}
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


def test_both_runners_answer_every_field_of_the_schema(native_runners, tmp_path):
    """A real measurement by each runner (ONNX Runtime, a one-layer model whose outputs include
    +-infinity), with labelled inputs and the peak asked: every message has exactly the
    schema's fields; the request's unbounded time cap (a string in JSON) is read by both; the
    native runner's non-finite outputs (strings) parse as the Python runner's (bare tokens)."""
    import torch

    from pytest_aiotbench import frameworks

    class Unbounded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(12, 5)
            self.register_buffer("edges", torch.tensor([math.inf, 0, 0, 0, -math.inf]))

        def forward(self, x):
            return self.linear(torch.flatten(x, 1)) + self.edges

    artifact = tmp_path / "unbounded.onnx"
    frameworks.get("onnxruntime").export(Unbounded().eval(), (torch.randn(1, 3, 2, 2),),
                                         artifact)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "probes.npy", rng.random((2, 3, 2, 2), np.float32))
    np.save(tmp_path / "labelled.npy", rng.random((3, 3, 2, 2), np.float32))
    request = RunRequest("onnxruntime", str(artifact), float_input(tmp_path / "probes.npy"), 1,
                         Timing(warmup_s=0.01, min_time_s=0.01, max_time_s=math.inf,
                                max_samples=25, target_rel_ci=1e-12),
                         labelled_inputs=float_input(tmp_path / "labelled.npy"),
                         peak_probe_threads=(1,), profile=ProfileRequest(runs=3))
    # The product binary has no fault switch: the variable changes nothing.
    native = describe(native_runners["onnxruntime"], "", request.to_json(),
                      AIOT_RUNNER_FAULT="onnxruntime:segfault-after-load")
    python = subprocess.run([sys.executable, str(RUNNER_SCRIPT)], input=request.to_json(),
                            text=True, capture_output=True, timeout=120, check=False)
    results = {}
    for name, done in (("native", native), ("python", python)):
        result = parse_result(done.stdout)
        assert done.returncode == 0 and isinstance(result, RunResult), done.stdout + done.stderr
        check_result_keys(json.loads(done.stdout))
        assert result.stop_reason == "sample_cap" and len(result.samples_s) == 25
        assert result.labelled is not None and len(result.labelled.top_k) == 3
        results[name] = result
    for outputs in (results["native"].probe_outputs, results["python"].probe_outputs):
        assert [(row[0][0], row[0][4]) for row in outputs] == [(math.inf, -math.inf)] * 2
    assert [row[0] for row in results["native"].labelled.top_k] == [0, 0, 0]
    assert results["native"].labelled.top_k == results["python"].labelled.top_k
    assert np.allclose(results["native"].probe_outputs, results["python"].probe_outputs)
    # Both profile the same ONNX Runtime graph: the same nodes, each on the CPU provider.
    profiled = {name: {(op.op_type, op.name, op.delegate) for op in result.profile.ops}
                for name, result in results.items()}
    assert profiled["native"] == profiled["python"], profiled
    assert {op_type for op_type, _, _ in profiled["native"]} >= {"Gemm", "Add"}
    assert {delegate for _, _, delegate in profiled["native"]} == {"CPUExecutionProvider"}


def test_the_native_runner_refuses_another_protocol_version(native_runners):
    answer = describe(native_runners["onnxruntime"], "", json.dumps({"framework": "x"}))
    failure = parse_result(answer.stdout)
    assert answer.returncode == 2 and isinstance(failure, RunFailure)
    assert failure.stage == "protocol" and "rebuild" in failure.error
    check_message(json.loads(answer.stdout), "failure")


@pytest.mark.parametrize("request_text, error", [
    ("{", "cannot parse the request: [json.exception.parse_error"),
    (json.dumps({"protocol_version": PROTOCOL_VERSION, "framework": "tflite"}),
     "the request has no field artifact"),
    (RunRequest("tflite", "m", float_input("p"), 1).to_json().replace('"warmup_s": 0.5',
                                                                       '"warmup_s": "x"'),
     "the request's timing has no number warmup_s"),
    (RunRequest("onnxruntime", "m", float_input("p"), 1).to_json(),
     "this runner runs tflite, the request asks for onnxruntime"),
    (json.dumps({**json.loads(RunRequest("tflite", "m", float_input("p"), 1).to_json()),
                 "paired": {"artifact": "b"}}),
     "the request's paired has no field block_min_samples"),
])
def test_a_malformed_request_is_refused_naming_what_is_wrong(native_runners, request_text,
                                                             error):
    answer = describe(native_runners["tflite"], "", request_text)
    failure = parse_result(answer.stdout)
    assert answer.returncode == 2 and isinstance(failure, RunFailure), answer.stdout
    assert failure.stage == "request" and failure.error.startswith(error), failure.error


def build_parts(runner) -> dict:
    return json.loads((runner.executable.parent.parent / "meta.json").read_text())["parts"]


def core_of(runner) -> Path:
    """The cached core (its installed folder) that ``runner`` was linked with."""
    parts = build_parts(runner)
    label = f"core-{runner.target}" + ("-test-faults" if parts["test_faults"] else "")
    return runner.executable.parent.parent.parent / f"{label}-{parts['core']}"


def test_the_backends_of_a_target_share_one_core(native_runners):
    """The core is compiled once per target and linked by every backend: one cache entry
    holding the library, the protocol header it was compiled against and what it was built
    with."""
    cores = {core_of(runner) for runner in native_runners.values()}
    assert len(cores) == 1
    core = cores.pop()
    assert (core / "lib" / "libaiot_core.a").is_file()
    assert (core / "include" / "protocol_fields.hpp").is_file()
    assert "AIOT_TEST_FAULTS OFF" in (core / "aiot_core.cmake").read_text()
    assert json.loads((core / "meta.json").read_text())["parts"]["sources"] == \
        build.core_sources_sha256()


def test_a_changed_core_source_changes_the_core_and_every_runner_key(tmp_path, monkeypatch):
    sources = tmp_path / "runner"
    (sources / "native").mkdir(parents=True)
    shutil.copytree(NATIVE_DIR, sources / "native", dirs_exist_ok=True)
    shutil.copy(NATIVE_DIR.parent / "protocol_schema.json", sources)
    monkeypatch.setattr(build, "NATIVE_DIR", sources / "native")
    core, runner = build.core_sources_sha256(), build.sources_sha256("tflite")
    with open(sources / "native" / "src" / "stats.cpp", "a") as source:
        source.write("// changed\n")
    assert build.core_sources_sha256() != core and build.sources_sha256("tflite") != runner
    # The backend's own source changes the runner, not the core.
    core, runner = build.core_sources_sha256(), build.sources_sha256("tflite")
    with open(sources / "native" / "src" / "backend_tflite.cpp", "a") as source:
        source.write("// changed\n")
    assert build.core_sources_sha256() == core and build.sources_sha256("tflite") != runner


def configure(build_dir: Path, backend: str, **defines: str) -> subprocess.CompletedProcess:
    command = [find_cmake(), "-S", str(NATIVE_DIR), "-B", str(build_dir),
               f"-DAIOT_BACKEND={backend}", "-DCMAKE_BUILD_TYPE=Release",
               *(f"-D{name}={value}" for name, value in defines.items())]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_a_hand_build_of_one_backend_compiles_the_core_itself(native_runners, tmp_path):
    """The README's one-folder build (no AIOT_CORE_DIR) still configures the core as its own
    target; with a core given, it is imported, not compiled."""
    defines = {**build_parts(native_runners["tflite"])["defines"],
               "AIOT_NLOHMANN_JSON_INCLUDE_DIR": str(nlohmann_json_include()[0])}
    alone = configure(tmp_path / "alone", "tflite", **defines)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert (tmp_path / "alone" / "CMakeFiles" / "aiot_core.dir").is_dir()
    shared = configure(tmp_path / "shared", "tflite", **defines,
                       AIOT_CORE_DIR=str(core_of(native_runners["tflite"])))
    assert shared.returncode == 0, shared.stdout + shared.stderr
    assert not (tmp_path / "shared" / "CMakeFiles" / "aiot_core.dir").exists()


def test_a_core_built_otherwise_is_refused(native_runners, tmp_path):
    """A product core in a test build (or a core of another compiler or target) stops the
    configure, naming both."""
    done = configure(tmp_path / "build", "tflite", **build_parts(native_runners["tflite"])
                     ["defines"], AIOT_TEST_FAULTS="ON",
                     AIOT_CORE_DIR=str(core_of(native_runners["tflite"])))
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert "AIOT_TEST_FAULTS OFF; this build is" in message
    assert "AIOT_TEST_FAULTS ON" in message


def test_the_fault_switch_is_only_in_test_builds(native_runners, artifact_cache):
    """AIOT_RUNNER_FAULT is compiled only into a test build (CMake AIOT_TEST_FAULTS), which
    is cached under another key than the product's, with a core of its own."""
    product = native_runners["onnxruntime"]
    test_build = NativeBuilder(artifact_cache, progress=lambda line: None,
                               test_faults=["onnxruntime"]).build("onnxruntime")
    assert test_build.cache_key != product.cache_key
    assert core_of(test_build) != core_of(product)
    assert "AIOT_TEST_FAULTS ON" in (core_of(test_build) / "aiot_core.cmake").read_text()
    assert b"AIOT_RUNNER_FAULT" in test_build.executable.read_bytes()
    assert b"AIOT_RUNNER_FAULT" not in product.executable.read_bytes()
    again = NativeBuilder(artifact_cache, progress=lambda line: None).build("onnxruntime")
    assert again.executable == product.executable  # the environment asked for no test build


def test_one_backend_failing_to_build_leaves_the_others_built(native_runners, artifact_cache,
                                                              tmp_path, monkeypatch, capsys):
    # The shared cache: the core and the TFLite runner are there already (no second compile
    # of either); ONNX Runtime without its headers is a build of another key, which fails.
    empty = tmp_path / "no-headers"
    empty.mkdir()
    monkeypatch.setenv("AIOTBENCH_ONNXRUNTIME_INCLUDE", str(empty))
    code = main(["--framework", "onnxruntime,tflite", "--cache", str(artifact_cache)])
    out = capsys.readouterr().out
    assert code == 0
    assert "FAILED onnxruntime: the native onnxruntime runner failed to configure" in out
    assert "has no onnxruntime_c_api.h" in out
    assert "tflite" in out and str(native_runners["tflite"].executable) in out
    assert "1 of 2 backends failed; the others are built" in out


def test_a_library_missing_beside_the_runner_is_named(native_runners, tmp_path):
    runner = native_runners["onnxruntime"]
    program = RunnerProgram("native", runner.executable, ())  # the bundle left behind
    request = RunRequest("onnxruntime", "m.onnx", float_input("p.npy"), 1, Timing())
    with pytest.raises(RunnerFailed, match=r"shared library libonnxruntime\.so\.1 is missing"):
        LocalDevice().run(program, request, 60)


# ------------------------------------------------------------------ paired timing
#: Deterministic stopping: with max_time_s 0 the time cap stops at its floor of 2 rounds; an
#: infinite target converges as soon as min_rounds ran; a zero target never converges.
PAIRED_DEFAULTS = {"block_min_samples": 3, "block_min_time_s": 0.002, "min_rounds": 2,
                   "max_rounds": 4, "max_time_s": "Infinity", "target_rel_ci": 0}


@pytest.fixture(scope="module")
def paired_artifacts(tmp_path_factory) -> dict:
    """A cheap current model and a costlier baseline (1 and 24 layers) for ONNX Runtime and
    PyTorch Mobile (the two quick ones to make), and one probe input."""
    import torch

    from pytest_aiotbench import frameworks

    folder = tmp_path_factory.mktemp("paired")
    artifacts: dict = {"probes": str(folder / "probes.npy")}
    np.save(folder / "probes.npy", np.random.default_rng(0).random((1, 4, 4, 4), np.float32))
    for side, depth in (("current", 1), ("baseline", 24)):
        onnx_chain(depth, folder / f"{side}.onnx")
        layers = [torch.nn.Linear(64, 64) for _ in range(depth)]
        frameworks.get("pytorch-mobile").export(
            torch.nn.Sequential(torch.nn.Flatten(), *layers).eval(), (torch.randn(1, 4, 4, 4),),
            folder / f"{side}.ptl")
        artifacts["onnxruntime", side] = str(folder / f"{side}.onnx")
        artifacts["pytorch-mobile", side] = str(folder / f"{side}.ptl")
    return artifacts


def paired_request(artifacts: dict, framework: str, mode: str = "rigorous",
                   baseline: str | None = None, **paired) -> str:
    """A short request with ``paired`` set (null when ``paired`` is {"off": True})."""
    request = json.loads(RunRequest(
        framework, artifacts[framework, "current"], float_input(artifacts["probes"]), 1,
        Timing(mode=mode, warmup_s=0.01, warmup_min_samples=5, min_time_s=0.01,
               max_time_s=0.05)).to_json())
    request["paired"] = None if paired.pop("off", False) else {
        "artifact": baseline or artifacts[framework, "baseline"], **PAIRED_DEFAULTS, **paired}
    return json.dumps(request)


def run_paired(runner, artifacts: dict, framework: str, **request) -> tuple[int, dict]:
    """One real runner call: its exit code and its raw result."""
    done = describe(runner, "", paired_request(artifacts, framework, **request))
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("framework", ["onnxruntime", "pytorch-mobile"])
def test_the_baseline_is_timed_beside_in_alternated_rounds(native_runners, paired_artifacts,
                                                          framework):
    """A second instance of the backend times the baseline's artifact after the normal
    timing: A B, B A, ... rounds, each block with at least its samples, on the same input;
    the 24-layer baseline is the slower side."""
    code, raw = run_paired(native_runners[framework], paired_artifacts, framework)
    assert code == 0, raw
    check_result_keys(raw)
    paired = raw["paired"]
    check_message(paired, "paired_result")
    assert paired["stop_reason"] == "sample_cap" and paired["load_s"] > 0
    assert len(paired["warmup_samples_s"]) >= 5
    assert [r["order"] for r in paired["rounds"]] == ["baseline_first", "current_first"] * 2
    for round_ in paired["rounds"]:
        check_message(round_, "paired_round")
        for side in (round_["baseline_s"], round_["current_s"]):
            assert len(side) >= 3 and min(side) > 0
    # The normal timing is untouched: its own rule, its own samples.
    assert raw["stop_reason"] in ("converged", "time_cap") and len(raw["samples_s"]) >= 5
    pooled = {side: float(np.median([s for r in paired["rounds"] for s in r[f"{side}_s"]]))
              for side in ("current", "baseline")}
    assert pooled["current"] < pooled["baseline"], pooled
    # ONNX Runtime's idle pool spin-waits: its rounds time two instances loaded quiet.
    quiet = [note for note in raw["notes"] if "spin-wait off" in note]
    assert len(quiet) == (framework == "onnxruntime"), raw["notes"]
    # The host reads it as the Python runner's.
    parsed = parse_result(json.dumps(raw))
    assert isinstance(parsed, RunResult) and parsed.paired is not None
    assert [r.current_s for r in parsed.paired.rounds] == [r["current_s"] for r in
                                                           paired["rounds"]]


@pytest.mark.parametrize("rule, stop_reason, rounds", [
    ({"max_rounds": 3}, "sample_cap", 3),
    ({"max_rounds": "Infinity", "max_time_s": 0}, "time_cap", 2),
    ({"min_rounds": 3, "max_rounds": "Infinity", "target_rel_ci": "Infinity"}, "converged", 3),
])
def test_the_paired_rounds_stop_by_the_rule(native_runners, paired_artifacts, rule,
                                           stop_reason, rounds):
    code, raw = run_paired(native_runners["onnxruntime"], paired_artifacts, "onnxruntime",
                           **rule)
    assert code == 0, raw
    assert raw["paired"]["stop_reason"] == stop_reason
    assert len(raw["paired"]["rounds"]) == rounds


def test_no_paired_request_means_no_paired_result(native_runners, paired_artifacts):
    code, raw = run_paired(native_runners["onnxruntime"], paired_artifacts, "onnxruntime",
                           off=True)
    assert code == 0 and raw["paired"] is None
    check_result_keys(raw)
    assert parse_result(json.dumps(raw)).paired is None


@pytest.mark.parametrize("content", [None, b"not a model"])
def test_a_baseline_that_cannot_load_fails_naming_the_baseline(native_runners,
                                                               paired_artifacts, tmp_path,
                                                               content):
    baseline = tmp_path / "baseline.onnx"
    if content is not None:
        baseline.write_bytes(content)
    code, raw = run_paired(native_runners["onnxruntime"], paired_artifacts, "onnxruntime",
                           baseline=str(baseline))
    assert code == 2 and raw["ok"] is False and raw["stage"] == "load", raw
    check_message(raw, "failure")
    assert raw["error"].startswith(f"cannot load the baseline's artifact {baseline}: "
                                   f"onnxruntime: cannot load {baseline}: "), raw["error"]


def test_paired_timing_in_the_paper_mode_is_refused(native_runners, paired_artifacts):
    code, raw = run_paired(native_runners["onnxruntime"], paired_artifacts, "onnxruntime",
                           mode="paper")
    assert code == 2 and raw["stage"] == "request"
    assert raw["error"] == "paired timing needs the rigorous timing mode"


def test_the_test_build_can_crash_after_the_baseline_loads(artifact_cache, paired_artifacts):
    """AIOT_RUNNER_FAULT=<framework>:segfault-after-baseline-load: a real SIGSEGV with the
    second model loaded, for the host's crash handling (the test build the crash tests
    share)."""
    runner = NativeBuilder(artifact_cache, progress=lambda line: None,
                           test_faults=["onnxruntime"]).build("onnxruntime")
    done = describe(runner, "", paired_request(paired_artifacts, "onnxruntime"),
                    AIOT_RUNNER_FAULT="onnxruntime:segfault-after-baseline-load")
    assert done.returncode == -signal.SIGSEGV and done.stdout == "", done.stderr
    assert "segfault-after-baseline-load: raising SIGSEGV" in done.stderr


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
    # A real SIGSEGV raised inside the real binary, in ONNX Runtime's runner only: its test
    # build, which the builder makes when the environment asks (the product has no switch).
    monkeypatch.setenv(TEST_FAULTS_ENV, "onnxruntime")
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


def the_phone(document: dict) -> dict:
    """The one device measured. Its alias is AIoT_Phone, or AIoT_Phone-2 where another
    session's phone is on the same adb server at that moment."""
    (device,) = document["devices"].values()
    return device


def test_the_phone_has_no_python(phone, tmp_path):
    device = AdbDevice(phone.serial, AdbOptions(workdir=str(tmp_path / "w")))
    try:
        assert device.facts().python is None
        assert device.shell("python3 -c 1").returncode != 0
    finally:
        device.close()


def test_a_reference_network_is_measured_on_the_phone_natively(
        pytester, run_plugin, phone, native_runners, tmp_path):
    result, document = run_plugin(
        "-v", "--pyargs", "pytest_aiotbench.suite", f"--aiot-device={phone.serial}",
        # squeezenet1_1: its exports are shared with other tests (CI time)
        "--aiot-network=squeezenet1_1", "--aiot-cooldown=0",
        workdir_option(tmp_path))
    result.assert_outcomes(passed=len(native_runners))
    rows = the_phone(document)["workloads"]
    assert {(w["network"], w["framework"]) for w in rows} == {
        ("squeezenet1_1", f) for f in native_runners}
    for workload in rows:
        assert workload["runner"] == "native", workload["error"]
        assert workload["validity"]["passed"]
        assert workload["peak_rss_after_load_bytes"] > 0
    deploy = the_phone(document)["facts"]["deploy"]
    assert deploy["pushed"] >= 4 + 4 + 1  # runners and libraries, artifacts, probes


def test_digits_through_the_native_runner_on_the_phone(pytester, run_plugin, phone,
                                                       native_runners, digits_set, tmp_path):
    pytester.makepyfile(test_digits=digits_set["module"])
    result, document = run_plugin(f"--aiot-device={phone.serial}", "--aiot-cooldown=0",
                                  f"--aiot-dataset={digits_set['val']}", "--aiot-images=100",
                                  workdir_option(tmp_path))
    result.assert_outcomes(passed=len(native_runners))
    result.stdout.fnmatch_lines(["e2e ms[*]: native runner rows exclude JPEG decoding*"])
    for workload in the_phone(document)["workloads"]:
        assert workload["runner"] == "native" and workload["decoded_on_device"] is False
        assert workload["accuracy_source"] == "labelled images" and workload["images"] == 100
        assert workload["top1"] >= 0.9


def test_a_library_missing_on_the_phone_is_named(phone, native_runners, tmp_path):
    runner = native_runners["executorch"]
    kept = tuple(p for p in runner.libraries if p.name != "libexecutorch_threadpool.so")
    device = AdbDevice(phone.serial, AdbOptions(workdir=str(tmp_path / "w")))
    try:
        request = RunRequest("executorch", "m.pte", float_input("p.npy"), 1, Timing())
        with pytest.raises(RunnerFailed,
                           match=r"shared library libexecutorch_threadpool\.so is missing"):
            device.run(RunnerProgram("native", runner.executable, kept), request, 60)
    finally:
        device.close()


def test_a_32_bit_android_phone_skips_naming_its_abi_before_anything_is_exported(
        pytester, run_plugin, adbd_factory, tmp_path):
    """No framework publishes 32-bit arm wheels, so the loader route has no build for it;
    the skip comes before the export (an empty cache stays empty of artifacts)."""
    android = adbd_factory("Android Phone", python=None,
                           props={"ro.build.version.release": "14",
                                  "ro.product.cpu.abi": "armeabi-v7a"})
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin("-rs", f"--aiot-device={android.serial}", "--aiot-cooldown=0",
                                  "--aiot-framework=onnxruntime", workdir_option(tmp_path),
                                  f"--aiot-cache={tmp_path / 'empty cache'}")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([
        "SKIPPED*Android_Phone* (android-armeabi-v7a)*ABI armeabi-v7a runs a 32-bit userland*"
        "no armv7 wheels*"])
    assert document["environment"]["timing"]["artifacts_built"] == 0
    assert not list((tmp_path / "empty cache").glob("*tiny_cnn*"))


def test_a_phone_without_taskset_runs_unpinned_and_its_row_says_so(
        adbd_factory, native_runners, paired_artifacts, tmp_path):
    """A big and a little core, and no taskset in the toolbox: the runner is started
    without it, on every core, and the row's note says why."""
    from adbd_testbed import PHONE_TOOLS

    phone = adbd_factory("Phone without taskset", python=None,
                         tools=tuple(tool for tool in PHONE_TOOLS if tool != "taskset"),
                         core_max_khz=(1_800_000, 2_400_000))
    device = AdbDevice(phone.serial, AdbOptions(workdir=str(tmp_path / "w")))
    try:
        assert device.facts().big_cores == [1]
        assert device.cpu_count() == device.facts().cores  # not pinned: every core
        (note,) = device.run_notes()
        assert note.startswith("ran unpinned: the device has no taskset") and "(1)" in note
        runner = native_runners["onnxruntime"]
        model = Path(paired_artifacts["onnxruntime", "current"])
        request = RunRequest("onnxruntime", device.stage(model),
                             float_input(device.stage(Path(paired_artifacts["probes"]))), 1,
                             Timing(warmup_s=0.01, min_time_s=0.05, max_time_s=0.5))
        result = device.run(RunnerProgram("native", runner.executable, runner.libraries,
                                          runner), request, 60)
        assert len(result.samples_s) >= 3
    finally:
        device.close()
