"""Each framework, for real: export a small network, run it in the runner process on the
local device, and check its answers against the fp32 reference."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_aiotbench import frameworks
from pytest_aiotbench.artifacts import ArtifactCache, export_artifact, prepare_network
from pytest_aiotbench.artifacts.prepare import PreparedNetwork
from pytest_aiotbench.devices import FrameworkMissing, LocalDevice, RunnerFailed
from pytest_aiotbench.measure import compare, summarize
from pytest_aiotbench.networks.card import NetworkCard, image_input
from pytest_aiotbench.runner.native.build import NativeBuilder
from pytest_aiotbench.runner.program import PYTHON_RUNNER, RunnerProgram
from pytest_aiotbench.runner.protocol import (
    NO_DELEGATE,
    ProfileRequest,
    RunRequest,
    TensorFile,
    Timing,
)
from pytest_aiotbench.tasks import get as task

CLASSIFICATION = task("classification")

FAST_TIMING = Timing(warmup_s=0.05, min_samples=5, min_time_s=0.1, max_time_s=0.5)


def small_cnn(pretrained: bool) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10))


CARD = NetworkCard("small_cnn", small_cnn, inputs=image_input((1, 3, 32, 32)),
                   num_classes=10, origin=__name__)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepare_network(CARD, pretrained=False, seed=0, probe_count=3,
                           workdir=tmp_path_factory.mktemp("probes"))


def request_for(framework: str, artifact: Path, network: PreparedNetwork,
                profile: ProfileRequest | None = None) -> RunRequest:
    probes = tuple(TensorFile(one.name, one.dtype, str(path))
                   for one, path in zip(network.card.inputs, network.probe_paths, strict=True))
    return RunRequest(framework, str(artifact), probes, 1, FAST_TIMING, profile=profile)


#: The kernel library each framework hands this network's convolutions to, as its profiler
#: names it, and a word of the convolution's op type there.
CONVOLUTION_RUNS_IN = {"tflite": ("XNNPACK", "conv"),
                       "onnxruntime": ("CPUExecutionProvider", "conv"),
                       "pytorch-mobile": (NO_DELEGATE, "conv"),
                       "executorch": ("XNNPACK", "conv")}


def program_for(kind: str, framework: str, cache: Path) -> RunnerProgram:
    if kind == "python":
        return PYTHON_RUNNER
    native = NativeBuilder(cache, progress=lambda line: None).build(framework)
    return RunnerProgram("native", native.executable, native.libraries, native)


@pytest.mark.parametrize("runner", ["python", "native"])
@pytest.mark.parametrize("framework", ["tflite", "onnxruntime", "pytorch-mobile", "executorch"])
def test_export_deploy_time_and_check(framework, runner, prepared, artifact_cache):
    adapter = frameworks.get(framework)
    artifact = export_artifact(prepared, adapter, ArtifactCache(artifact_cache))
    assert artifact.path.suffix == adapter.suffix and artifact.size_bytes > 0

    result = LocalDevice().run(program_for(runner, framework, artifact_cache),
                               request_for(framework, artifact.path, prepared,
                                           ProfileRequest(runs=3, warmup_runs=1)), 300)

    assert result.runner == runner and result.framework == framework and result.threads == 1
    assert result.stop_reason in ("converged", "time_cap", "sample_cap")
    stats = summarize(result.samples_s)
    assert stats.n >= 5 and 0 < stats.min_s <= stats.median_s <= stats.max_s
    assert result.load_s > 0 and result.first_inference_s > 0
    assert result.peak_memory.after_timing >= result.peak_memory.after_load > 0
    validity = compare(result.probe_outputs, prepared.reference_outputs, prepared.outputs,
                       1e-4, CLASSIFICATION)
    assert validity.passed, validity.describe()
    assert validity.agreement == 1.0
    assert [check.name for check in validity.outputs] == ["output"]

    # The profiling pass: every framework on the native runner, all but LiteRT (no per-op API
    # in its Python Interpreter: the reason says so) on the Python runner.
    profile = result.profile
    assert profile is not None
    if runner == "python" and framework == "tflite":
        assert not profile.available and "--aiot-runner=native" in profile.unavailable
        return
    assert profile.available and profile.runs == 3 and profile.source, profile
    delegate, word = CONVOLUTION_RUNS_IN[framework]
    convolutions = [op for op in profile.ops if word in op.op_type.lower()]
    assert convolutions and {op.delegate for op in convolutions} == {delegate}, profile.ops
    assert len({op.name for op in convolutions}) >= 2  # two convolutions, told apart
    # Every op's time is its own (no span counted twice): together within one inference.
    assert 0 < profile.ops_s <= profile.total_s * 1.05, (profile.ops_s, profile.total_s)


def test_pytorch_mobile_says_when_optimize_for_mobile_was_skipped(prepared, artifact_cache):
    artifact = export_artifact(prepared, frameworks.get("pytorch-mobile"),
                               ArtifactCache(artifact_cache))
    notes = " ".join(artifact.notes)
    assert "optimize_for_mobile applied" in notes or "optimize_for_mobile skipped" in notes


@pytest.mark.parametrize("runner", ["python", "native"])
@pytest.mark.parametrize("framework", ["tflite", "onnxruntime", "pytorch-mobile", "executorch"])
def test_a_corrupt_artifact_fails_at_load_naming_the_file(framework, runner, prepared,
                                                          tmp_path, artifact_cache):
    suffix = frameworks.get(framework).suffix
    broken = tmp_path / f"broken model{suffix}"  # a space: never split by a shell
    broken.write_bytes(b"\x08\x07 this is not a model file" * 8)
    with pytest.raises(RunnerFailed) as error:
        LocalDevice().run(program_for(runner, framework, artifact_cache),
                          request_for(framework, broken, prepared), 120)
    assert error.value.stage == "load"
    assert f"broken model{suffix}" in str(error.value)


def answers(*outputs: np.ndarray) -> list[list[np.ndarray]]:
    """Per-output (probes, size) arrays as a runner answers them: per probe, per output."""
    return [[output[probe] for output in outputs] for probe in range(len(outputs[0]))]


def test_wrong_outputs_are_caught_relative_to_scale(prepared):
    (reference,) = prepared.reference_outputs
    scaled = reference * 1e12
    check = functools.partial(compare, reference=(scaled,), outputs=prepared.outputs,
                              task=CLASSIFICATION)
    assert check(answers(scaled), rtol=1e-6).passed
    nudged = scaled.copy()
    nudged[0, 0] += 1e-3 * np.abs(scaled[0]).max()
    assert not check(answers(nudged), rtol=1e-4).passed
    assert not check(answers(np.full_like(scaled, np.nan)), rtol=1.0).passed


def test_a_missing_framework_is_reported_with_what_to_install(prepared, artifact_cache,
                                                               python_without_frameworks):
    artifact = export_artifact(prepared, frameworks.get("onnxruntime"),
                               ArtifactCache(artifact_cache))
    device = LocalDevice(python=python_without_frameworks)
    with pytest.raises(FrameworkMissing) as error:
        device.run(PYTHON_RUNNER, request_for("onnxruntime", artifact.path,
                                              prepared), 120)
    assert "onnxruntime" in str(error.value) and "install" in str(error.value)


def test_a_runner_that_dies_reports_its_exit_code_and_stderr(prepared, tmp_path):
    """A crash without a result (a segfault in native code): the user sees why."""
    crashing = tmp_path / "crashing-python"
    crashing.write_text("#!/bin/sh\necho 'Fatal Python error: Segmentation fault' >&2\n"
                        "exit 139\n")
    crashing.chmod(0o755)
    with pytest.raises(RunnerFailed) as error:
        LocalDevice(python=str(crashing)).run(
            PYTHON_RUNNER, request_for("onnxruntime", tmp_path / "m.onnx",
                                       prepared), 10)
    assert "killed by SIGSEGV (signal 11, exit code 139)" in str(error.value)
    assert "Segmentation fault" in str(error.value)


def test_a_python_that_does_not_exist_is_named(prepared, tmp_path):
    missing = tmp_path / "no-such-python"
    with pytest.raises(RunnerFailed) as error:
        LocalDevice(python=str(missing)).run(
            PYTHON_RUNNER, request_for("onnxruntime", tmp_path / "m.onnx",
                                       prepared), 10)
    assert str(missing) in str(error.value)
