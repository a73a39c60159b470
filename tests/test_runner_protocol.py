"""The runner protocol: one versioned contract, spoken by the Python runner and the native
one, refused by either side when the versions differ."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from pytest_aiotbench.runner.aiot_runner import PROTOCOL_VERSION as PYTHON_RUNNER_VERSION
from pytest_aiotbench.runner.program import RUNNER_SCRIPT
from pytest_aiotbench.runner.protocol import (
    PROTOCOL_VERSION,
    ProtocolError,
    RunFailure,
    RunRequest,
    RunResult,
    Timing,
    parse_result,
)


def test_both_runners_implement_the_hosts_version():
    from pytest_aiotbench.runner.native.build import NATIVE_DIR

    assert PYTHON_RUNNER_VERSION == PROTOCOL_VERSION
    header = (NATIVE_DIR / "src" / "measure.hpp").read_text()
    assert f"constexpr int kProtocolVersion = {PROTOCOL_VERSION};" in header


def test_a_request_carries_the_version_and_every_field():
    request = RunRequest("onnxruntime", "/w/m.onnx", "/w/p.npy", 2, Timing(mode="paper"),
                         labelled_inputs="/w/l.npy")
    data = json.loads(request.to_json())
    assert data["protocol_version"] == PROTOCOL_VERSION
    assert data["timing"]["mode"] == "paper" and data["labelled_inputs"] == "/w/l.npy"
    assert data["images"] == []


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
    frameworks.get("onnxruntime").export(model, example, artifact)
    np.save(tmp_path / "probes.npy", np.random.default_rng(0).random((3, 3, 2, 2), np.float32))
    request = RunRequest("onnxruntime", str(artifact), str(tmp_path / "probes.npy"), 1,
                         Timing(warmup_s=0.01, min_time_s=0.05, max_time_s=0.2))
    code, stdout = run_python_runner(request.to_json())
    result = parse_result(stdout)
    assert code == 0 and isinstance(result, RunResult), stdout
    assert result.runner == "python" and result.framework == "onnxruntime"
    assert len(result.probe_outputs) == 3 and len(result.probe_outputs[0]) == 5
    assert result.peak_memory.after_load > 10**6
    assert result.peak_memory.after_timing >= result.peak_memory.after_load
    assert result.samples_s and result.stop_reason in ("converged", "time_cap")
    assert result.peak_compute is None  # not asked


def test_the_python_runner_measures_peak_compute_when_asked(tmp_path):
    """The matrix-multiply probe answers GFLOP/s for each thread count asked, within the
    second or two the probe may take."""
    import torch

    from pytest_aiotbench import frameworks

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)).eval()
    artifact = tmp_path / "linear.onnx"
    frameworks.get("onnxruntime").export(model, torch.randn(1, 3, 2, 2), artifact)
    np.save(tmp_path / "probes.npy", np.random.default_rng(0).random((1, 3, 2, 2), np.float32))
    request = RunRequest("onnxruntime", str(artifact), str(tmp_path / "probes.npy"), 2,
                         Timing(warmup_s=0.0, min_time_s=0.01, max_time_s=0.05),
                         peak_probe_threads=(1, 2))
    started = time.perf_counter()
    code, stdout = run_python_runner(request.to_json())
    elapsed = time.perf_counter() - started
    result = parse_result(stdout)
    assert code == 0 and isinstance(result, RunResult), stdout
    peak = result.peak_compute
    assert peak is not None and peak.measured, peak
    assert set(peak.gflops_by_threads) == {1, 2}
    # Any CPU of the last decades does more than 0.1 GFLOP/s on one core in float32.
    assert all(gflops > 0.1 for gflops in peak.gflops_by_threads.values())
    assert peak.at(2) == peak.gflops_by_threads[2] and peak.at(3) is None
    assert "matmul" in peak.method and elapsed < 30


def test_the_python_runner_refuses_another_protocol_version():
    code, stdout = run_python_runner(json.dumps({"framework": "onnxruntime"}))  # version 1
    failure = parse_result(stdout)
    assert code == 2 and isinstance(failure, RunFailure)
    assert failure.stage == "protocol" and f"speaks {PROTOCOL_VERSION}" in failure.error


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


def test_no_json_on_stdout_means_no_result():
    assert parse_result("Segmentation fault\n") is None
