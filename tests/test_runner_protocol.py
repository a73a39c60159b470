"""The runner protocol: one versioned contract, spoken by the Python runner and the native
one, refused by either side when the versions differ."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
from conftest import onnx_chain
from probe_files import float_input

from pytest_aiotbench.runner.aiot_runner import NO_DELEGATE as PYTHON_RUNNER_NO_DELEGATE
from pytest_aiotbench.runner.aiot_runner import PROTOCOL_VERSION as PYTHON_RUNNER_VERSION
from pytest_aiotbench.runner.native.build import NATIVE_DIR
from pytest_aiotbench.runner.program import RUNNER_SCRIPT
from pytest_aiotbench.runner.protocol import (
    NO_DELEGATE,
    PAIRED_ORDERS,
    PROTOCOL_VERSION,
    RUNNERS,
    SCHEMA,
    SCHEMA_PATH,
    STOP_REASONS,
    TIMING_MODES,
    CompetingLoad,
    LabelledPass,
    PairedRequest,
    PairedRound,
    PairedTiming,
    PeakCompute,
    Profile,
    ProfiledOp,
    ProfileRequest,
    ProtocolError,
    RunFailure,
    RunRequest,
    RunResult,
    ThermalState,
    Timing,
    message_fields,
    parse_result,
    required_fields,
)


def fields(cls) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def test_the_schema_states_the_version_once():
    """The host's version is the schema's; the Python runner (pushed alone, so it keeps its
    own constant) says the same; the C++ sources state none of their own: CMake generates
    kProtocolVersion from the schema (cmake/protocol.cmake)."""
    assert PROTOCOL_VERSION == json.loads(SCHEMA_PATH.read_text())["protocol_version"]
    assert PYTHON_RUNNER_VERSION == PROTOCOL_VERSION
    for source in (NATIVE_DIR / "src").iterdir():
        assert not re.search(r"kProtocolVersion\s*=", source.read_text()), source.name
    assert "constexpr int kProtocolVersion = ${AIOT_PROTOCOL_VERSION}" in (
        NATIVE_DIR / "cmake" / "protocol.cmake").read_text()


def test_the_host_classes_match_the_schema():
    assert (RUNNERS, TIMING_MODES, STOP_REASONS) == tuple(
        tuple(SCHEMA["enums"][name]) for name in ("runner", "timing_mode", "stop_reason"))
    assert fields(RunRequest) | {"protocol_version"} == set(message_fields("request"))
    assert fields(Timing) == set(message_fields("timing"))
    assert fields(ThermalState) == set(message_fields("thermal_state"))
    assert fields(PeakCompute) == set(message_fields("peak_compute"))
    assert fields(LabelledPass) == set(message_fields("labelled"))
    assert fields(PairedRequest) == set(message_fields("paired_request"))
    assert fields(PairedTiming) == set(message_fields("paired_result"))
    assert fields(PairedRound) == set(message_fields("paired_round"))
    assert PAIRED_ORDERS == tuple(SCHEMA["enums"]["paired_order"])
    assert fields(ProfileRequest) == set(message_fields("profile_request"))
    assert fields(Profile) == set(message_fields("profile_result"))
    assert fields(ProfiledOp) == set(message_fields("profiled_op"))
    assert fields(CompetingLoad) == set(message_fields("competing_load"))
    assert (NO_DELEGATE,) == tuple(SCHEMA["enums"]["no_delegate"])
    assert PYTHON_RUNNER_NO_DELEGATE == NO_DELEGATE  # pushed alone, it keeps its own
    assert fields(RunFailure) == set(message_fields("failure")) - {
        "ok", "protocol_version", "framework"}
    assert Timing().mode in TIMING_MODES


def test_the_native_sources_name_fields_only_through_the_generated_header():
    """The C++ runner reads and writes the protocol's JSON in one file (protocol_io.cpp; the
    only other JSON it reads is ONNX Runtime's profiling trace, in that backend), and names
    no protocol field or value there as a string literal: each comes from
    protocol_fields.hpp, so a field the schema lacks does not compile."""
    sources = sorted((NATIVE_DIR / "src").glob("*.[ch]pp"))
    assert [s.name for s in sources if "nlohmann/" in s.read_text()] == [
        "backend_onnxruntime.cpp", "protocol_io.cpp"]
    names = {name for message in SCHEMA["messages"] for name in message_fields(message)}
    names |= {value for values in SCHEMA["enums"].values() for value in values}
    literals = set(re.findall(r'"([a-z_0-9]+)"', (NATIVE_DIR / "src" / "protocol_io.cpp")
                              .read_text()))
    assert literals and not literals & names, literals & names


def test_a_request_carries_the_version_and_every_field():
    request = RunRequest("onnxruntime", "/w/m.onnx", float_input("/w/p.npy"), 2,
                         Timing(mode="paper"), labelled_inputs=float_input("/w/l.npy"))
    data = json.loads(request.to_json())
    assert set(data) == set(message_fields("request"))
    assert set(data["timing"]) == set(message_fields("timing"))
    assert data["protocol_version"] == PROTOCOL_VERSION
    assert set(data["probe_inputs"][0]) == set(message_fields("tensor_file"))
    assert data["timing"]["mode"] == "paper"
    assert data["labelled_inputs"] == [{"name": "input", "dtype": "float32", "path": "/w/l.npy"}]
    assert data["images"] == []


def test_a_request_is_strict_json_even_with_an_unbounded_cap():
    """Neither runner's JSON takes a bare Infinity: a non-finite number is a string."""
    text = RunRequest("tflite", "m", float_input("p"), 1, Timing(max_time_s=math.inf)).to_json()
    data = json.loads(text, parse_constant=lambda token: pytest.fail(f"bare {token}"))
    assert data["timing"]["max_time_s"] == "Infinity"


def check_message(value: dict[str, Any], message: str) -> None:
    """``value`` carries every field the schema gives ``message``, and no other."""
    assert set(required_fields(message)) <= set(value) <= set(message_fields(message)), (
        message, sorted(value))


def check_result_keys(raw: dict[str, Any]) -> None:
    """Every message of a runner's result has exactly the schema's fields."""
    check_message(raw, "result")
    check_message(raw["thermal"], "thermal")
    for state in raw["thermal"].values():
        check_message(state, "thermal_state")
    check_message(raw["peak_rss_bytes"], "peak_rss_bytes")
    if raw["labelled"] is not None:
        check_message(raw["labelled"], "labelled")
    if raw["peak_compute"] is not None:
        check_message(raw["peak_compute"], "peak_compute")
    if raw["paired"] is not None:
        check_message(raw["paired"], "paired_result")
        for entry in raw["paired"]["rounds"]:
            check_message(entry, "paired_round")
    if raw["profile"] is not None:
        check_message(raw["profile"], "profile_result")
        for op in raw["profile"]["ops"]:
            check_message(op, "profiled_op")
    if raw["competing_load"] is not None:
        check_message(raw["competing_load"], "competing_load")


def run_python_runner(request: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, str(RUNNER_SCRIPT)], input=request, text=True,
                          capture_output=True, timeout=120, check=False)
    return done.returncode, done.stdout


def test_the_python_runner_answers_a_typed_result(tmp_path):
    """A real measurement (ONNX Runtime, a one-layer model): every field parses, and peak
    memory is there after loading and after timing."""
    import torch

    from pytest_aiotbench import frameworks

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)).eval()
    example = torch.randn(1, 3, 2, 2)
    artifact = tmp_path / "linear.onnx"
    frameworks.get("onnxruntime").export(model, (example,), artifact)
    np.save(tmp_path / "probes.npy", np.random.default_rng(0).random((3, 3, 2, 2), np.float32))
    request = RunRequest("onnxruntime", str(artifact), float_input(tmp_path / "probes.npy"), 1,
                         Timing(warmup_s=0.01, min_time_s=0.05, max_time_s=0.2))
    code, stdout = run_python_runner(request.to_json())
    result = parse_result(stdout)
    assert code == 0 and isinstance(result, RunResult), stdout
    check_result_keys(json.loads(stdout))
    assert result.runner == "python" and result.framework == "onnxruntime"
    assert len(result.probe_outputs) == 3 and len(result.probe_outputs[0]) == 1
    assert len(result.probe_outputs[0][0]) == 5 and len(result.output_names) == 1
    assert result.peak_memory.after_load > 10**6
    assert result.peak_memory.after_timing >= result.peak_memory.after_load
    assert result.samples_s and result.stop_reason in ("converged", "time_cap")
    assert result.peak_compute is None  # not asked
    # The cores it may run on, their time over the timing, its own CPU time within it.
    load = result.competing_load
    assert load is not None and load.cores == tuple(sorted(os.sched_getaffinity(0)))
    assert 0 < load.own_ticks and load.busy_ticks <= load.total_ticks


def test_the_python_runner_measures_peak_compute_when_asked(tmp_path):
    """The matrix-multiply probe answers GFLOP/s for each thread count asked, within the
    second or two the probe may take."""
    import torch

    from pytest_aiotbench import frameworks

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)).eval()
    artifact = tmp_path / "linear.onnx"
    frameworks.get("onnxruntime").export(model, (torch.randn(1, 3, 2, 2),), artifact)
    np.save(tmp_path / "probes.npy", np.random.default_rng(0).random((1, 3, 2, 2), np.float32))
    request = RunRequest("onnxruntime", str(artifact), float_input(str(tmp_path / "probes.npy")), 2,
                         Timing(warmup_s=0.0, min_time_s=0.01, max_time_s=0.05),
                         peak_probe_threads=(1, 2))
    started = time.perf_counter()
    code, stdout = run_python_runner(request.to_json())
    elapsed = time.perf_counter() - started
    result = parse_result(stdout)
    assert code == 0 and isinstance(result, RunResult), stdout
    check_result_keys(json.loads(stdout))
    peak = result.peak_compute
    assert peak is not None and peak.measured, peak
    assert set(peak.gflops_by_threads) == {1, 2}
    # Any CPU of the last decades does more than 0.1 GFLOP/s on one core in float32.
    assert all(gflops > 0.1 for gflops in peak.gflops_by_threads.values())
    assert peak.at(2) == peak.gflops_by_threads[2] and peak.at(3) is None
    assert "matmul" in peak.method and elapsed < 30


def test_the_python_runner_times_a_pair_in_alternated_rounds(tmp_path):
    """Protocol 4: the baseline's artifact beside this one, after this one's own timing:
    the side that runs first alternates, every block has its samples and time, the rounds
    stop at the cap asked, and a much heavier current side reads as slower in every round
    (200 layers against 1: 19x here; 48 layers, 5x, once read faster in a round beside busy
    test workers)."""
    light, heavy = tmp_path / "light.onnx", tmp_path / "heavy.onnx"
    onnx_chain(1, light)
    onnx_chain(200, heavy)
    np.save(tmp_path / "probes.npy", np.random.default_rng(0).random((1, 4, 4, 4), np.float32))
    paired = PairedRequest(str(light), block_min_samples=3, block_min_time_s=0.002,
                           min_rounds=4, max_rounds=6, max_time_s=30, target_rel_ci=0.0)
    request = RunRequest("onnxruntime", str(heavy), float_input(str(tmp_path / "probes.npy")), 1,
                         Timing(warmup_s=0.01, min_time_s=0.02, max_time_s=0.1),
                         paired=paired)
    code, stdout = run_python_runner(request.to_json())
    result = parse_result(stdout)
    assert code == 0 and isinstance(result, RunResult), stdout
    check_result_keys(json.loads(stdout))
    pair = result.paired
    assert pair is not None and pair.stop_reason == "sample_cap" and len(pair.rounds) == 6
    assert [r.order for r in pair.rounds] == ["baseline_first", "current_first"] * 3
    assert all(len(r.baseline_s) >= 3 and len(r.current_s) >= 3 for r in pair.rounds)
    # A block lasts its time at least; its samples cover most of it (the rest is the loop).
    assert all(sum(r.baseline_s) >= 0.001 for r in pair.rounds)
    assert pair.load_s > 0 and pair.warmup_samples_s
    assert all(np.median(r.current_s) > np.median(r.baseline_s) for r in pair.rounds)
    # ONNX Runtime's idle pool spin-waits: the rounds time two instances loaded quiet.
    assert any("spin-wait off" in note for note in result.notes), result.notes


def test_the_python_runner_names_the_baseline_artifact_it_cannot_load(tmp_path):
    current = tmp_path / "current.onnx"
    onnx_chain(1, current)
    (tmp_path / "baseline.onnx").write_bytes(b"not a model")
    np.save(tmp_path / "probes.npy", np.zeros((1, 4, 4, 4), np.float32))
    request = RunRequest("onnxruntime", str(current), float_input(str(tmp_path / "probes.npy")), 1,
                         Timing(warmup_s=0.0, min_time_s=0.01, max_time_s=0.05),
                         paired=PairedRequest(str(tmp_path / "baseline.onnx")))
    code, stdout = run_python_runner(request.to_json())
    failure = parse_result(stdout)
    assert code == 2 and isinstance(failure, RunFailure), stdout
    assert failure.stage == "load" and "baseline's artifact" in failure.error
    assert "baseline.onnx" in failure.error
    paper = RunRequest("onnxruntime", str(current), float_input(str(tmp_path / "probes.npy")), 1,
                       Timing(mode="paper"), paired=PairedRequest(str(current)))
    code, stdout = run_python_runner(paper.to_json())
    failure = parse_result(stdout)
    assert isinstance(failure, RunFailure) and failure.stage == "request"
    assert "rigorous" in failure.error


def test_the_python_runner_refuses_another_protocol_version():
    code, stdout = run_python_runner(json.dumps({"framework": "onnxruntime"}))  # version 1
    failure = parse_result(stdout)
    assert code == 2 and isinstance(failure, RunFailure)
    assert failure.stage == "protocol" and f"speaks {PROTOCOL_VERSION}" in failure.error
    check_message(json.loads(stdout), "failure")


def test_the_host_refuses_a_result_of_another_version():
    old = json.dumps({"ok": True, "schema": 1, "samples_s": [0.1]})
    with pytest.raises(ProtocolError, match="python runner speaks protocol 1, this host "
                                            f"speaks {PROTOCOL_VERSION}: deploy the runner"):
        parse_result(old)
    newer = json.dumps({"ok": True, "protocol_version": PROTOCOL_VERSION + 1,
                        "runner": "native"})
    with pytest.raises(ProtocolError, match="update pytest-aiotbench"):
        parse_result(newer)


def test_a_malformed_result_is_a_protocol_error_naming_the_field():
    broken = json.dumps({"ok": True, "protocol_version": PROTOCOL_VERSION, "runner": "python"})
    with pytest.raises(ProtocolError, match=r"malformed runner result.*stop_reason"):
        parse_result(broken)
    failure = json.dumps({"ok": False, "protocol_version": PROTOCOL_VERSION,
                          "runner": "native", "stage": "load"})
    with pytest.raises(ProtocolError, match=r"the failure lacks error"):
        parse_result(failure)


def test_no_json_on_stdout_means_no_result():
    assert parse_result("Segmentation fault\n") is None


def test_the_compare_tool_times_a_file_through_the_plugins_runner(tmp_path):
    """tox -e compare's plugin side: its request is one the runners take."""
    from conftest import onnx_chain

    from pytest_aiotbench.runner.program import PYTHON_RUNNER
    from pytest_aiotbench.tools.compare import _input_like, plugin_runner

    onnx_chain(2, tmp_path / "chain.onnx")
    np.save(tmp_path / "probes.npy", _input_like(str(tmp_path / "chain.onnx")))
    median = plugin_runner(PYTHON_RUNNER, str(tmp_path / "chain.onnx"), "onnxruntime",
                           tmp_path / "probes.npy", 1, 0.05)
    assert 0 < median < 0.05
