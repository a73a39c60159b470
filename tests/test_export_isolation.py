"""Exports run in a worker process: a converter that exits, aborts or crashes fails its own
item with its own words, and the session goes on to its summary and its JSON. A corrupt
cache entry is reported, exported again, and its item passes."""

from __future__ import annotations

import errno
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import TINY_CNN_MODULE, unavailable

from pytest_aiotbench import frameworks
from pytest_aiotbench.artifacts import ArtifactCache, export_artifact, prepare_network
from pytest_aiotbench.artifacts.export_worker import tail
from pytest_aiotbench.networks.card import NetworkCard, image_input

IN_SESSION = "exported in the session's process"


@pytest.fixture
def full_file_system(tmp_path):
    """A small tmpfs, filled to its last byte (mounting needs root: CI has it)."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "aiotbench-full",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable("full file system (a small tmpfs)",
                    f"cannot mount one here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        with open(mount_point / "filler", "wb", buffering=0) as filler:
            with pytest.raises(OSError) as full:
                while True:
                    filler.write(bytes(1 << 16))
        assert full.value.errno == errno.ENOSPC
        assert shutil.disk_usage(mount_point).free == 0
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def workloads_by_id(document: dict) -> dict[str, dict]:
    """The document's workloads by network-framework-device."""
    return {f"{w['network']}-{w['framework']}-{w['device']}": w
            for device in document["devices"].values() for w in device["workloads"]}


def test_a_full_disk_fails_every_export_and_the_session_still_reports(
        pytester, run_plugin, full_file_system):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin("-v", "--aiot-framework=tflite,onnxruntime",
                                  f"--aiot-cache={full_file_system / 'cache'}")
    # TFLite's converter writes through LLVM, which exits the process on a write error;
    # ONNX's raises OSError. Either way: that item's error, with the converter's words.
    result.assert_outcomes(errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for framework in ("tflite", "onnxruntime"):
        result.stdout.fnmatch_lines([
            f"*ERROR at setup of test_workload?tiny_cnn-{framework}-local?*",
            f"*export stage: exporting 'tiny_cnn' to {framework} failed:*"
            "No space left on device*"])
    result.stdout.fnmatch_lines(["*LLVM ERROR: IO failure on output stream: No space left "
                                 "on device*"])
    result.stdout.fnmatch_lines(["*2 errors in *"])
    assert document is not None
    workloads = workloads_by_id(document)
    assert set(workloads) == {"tiny_cnn-tflite-local", "tiny_cnn-onnxruntime-local"}
    for workload in workloads.values():
        assert workload["status"] != "passed"
        assert "No space left on device" in workload["error"]


CRASHING_MODULE = TINY_CNN_MODULE + '''
import os
import sys


class CrashesWhenExported(TinyCNN):
    """A network with a custom kernel whose native code cannot take traced tensors: it says
    so and ends the process (abort, or exit), as a converter's own native failure would."""

    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, x):
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            print(f"custom_kernel: no kernel for traced tensors ({self.how})", file=sys.stderr,
                  flush=True)
            if self.how == "abort":
                os.abort()
            os._exit(3)
        return super().forward(x)


@register_network(input_shape=(1, 3, 32, 32), num_classes=10)
def aborts_when_exported():
    return CrashesWhenExported("abort")


@register_network(input_shape=(1, 3, 32, 32), num_classes=10)
def exits_when_exported():
    return CrashesWhenExported("exit")


@register_network(input_shape=(1, 3, 32, 32), num_classes=10)
def tiny_cnn_after_the_crashes():
    return TinyCNN()
'''


@pytest.mark.parametrize("workers", ["1", "2"], ids=["one-export-at-a-time", "export-pool"])
def test_a_converter_that_aborts_or_exits_fails_only_its_own_item(pytester, run_plugin,
                                                                 tmp_path, workers):
    """Also in the export pool, where the dying workers are the pool threads' own and are
    replaced there."""
    pytester.makepyfile(test_crashing=CRASHING_MODULE)
    result, document = run_plugin("-v", "--aiot-framework=onnxruntime",
                                  f"--aiot-cache={tmp_path / 'cache'}",
                                  f"--aiot-export-workers={workers}")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_workload?aborts_when_exported-onnxruntime-local?*",
        "*export stage: exporting 'aborts_when_exported' to onnxruntime failed: the "
        "converter's process was killed by SIGABRT: *custom_kernel: no kernel for traced "
        "tensors (abort)*"])
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_workload?exits_when_exported-onnxruntime-local?*",
        "*export stage: exporting 'exits_when_exported' to onnxruntime failed: the "
        "converter's process exited with status 3: *custom_kernel: no kernel for traced "
        "tensors (exit)*"])
    result.stdout.fnmatch_lines(["*= 2 passed, *2 errors in *"])
    workloads = workloads_by_id(document)
    assert set(workloads) == {f"{name}-onnxruntime-local" for name in (
        "tiny_cnn", "aborts_when_exported", "exits_when_exported",
        "tiny_cnn_after_the_crashes")}
    for name in ("tiny_cnn", "tiny_cnn_after_the_crashes"):
        workload = workloads[f"{name}-onnxruntime-local"]
        assert workload["status"] == "passed"
        # Exported by a worker: the one after the crashes by a new one.
        assert workload["artifact"]["built_this_session"]
        assert not any(IN_SESSION in note for note in workload["notes"])


def test_a_corrupt_cache_entry_is_reported_exported_again_and_passes(pytester, run_plugin,
                                                                     tmp_path):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    cache = f"--aiot-cache={tmp_path / 'cache'}"
    first, document = run_plugin("--aiot-framework=onnxruntime", cache)
    first.assert_outcomes(passed=1)
    stored = workloads_by_id(document)["tiny_cnn-onnxruntime-local"]["artifact"]
    path = Path(stored["path"])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    data[middle + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert path.stat().st_size == stored["bytes"]

    again, document = run_plugin("--aiot-framework=onnxruntime", cache)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines([f"*corrupt cache entry {path}: sha256 *, not the "
                                f"{stored['sha256'][:16]}* recorded when it was stored; "
                                "discarded, exporting it again*"])
    served = workloads_by_id(document)["tiny_cnn-onnxruntime-local"]["artifact"]
    assert served["built_this_session"]
    assert hashlib.sha256(Path(served["path"]).read_bytes()).hexdigest() == served["sha256"]
    # What the export cost: its time and the export worker's peak memory (torch and the
    # converter loaded: hundreds of MB), in the row, the session's timing and the summary.
    (cost,) = document["environment"]["timing"]["exports"]
    assert cost == {"artifact": path.name, "build_s": served["build_s"],
                    "peak_rss_bytes": served["export_peak_rss_bytes"]}
    assert cost["build_s"] > 0 and 100e6 < cost["peak_rss_bytes"] < 20e9
    again.stdout.fnmatch_lines([f"artifacts: 1 exported in {cost['build_s']:.1f} s (slowest: "
                                f"{path.name}, {cost['build_s']:.1f} s, peak "
                                f"{cost['peak_rss_bytes'] / 1e9:.1f} GB), 0 from the cache*"])


# ---------------------------------------------------------------- the worker's own edges
class SmallCNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def unseeded_cnn(pretrained: bool) -> torch.nn.Module:
    """Weights drawn from fresh entropy: no other process can draw them again."""
    model = SmallCNN()
    rng = np.random.default_rng()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.from_numpy(
                rng.standard_normal(tuple(parameter.shape)).astype(np.float32)))
    return model


def onnx_outputs(path: Path, probes: tuple[np.ndarray, ...]) -> np.ndarray:
    """The first output's answers to the one input's probes."""
    (images,) = probes
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.stack([session.run(None, {name: images[i:i + 1]})[0].reshape(-1)
                     for i in range(len(images))])


def test_weights_the_worker_cannot_draw_again_are_handed_to_it(tmp_path):
    card = NetworkCard("unseeded_cnn", unseeded_cnn, inputs=image_input((1, 3, 16, 16)),
                       num_classes=5, origin=__name__)
    prepared = prepare_network(card, pretrained=False, seed=0, probe_count=3,
                               workdir=tmp_path / "probes")
    artifact = export_artifact(prepared, frameworks.get("onnxruntime"),
                               ArtifactCache(tmp_path / "cache"))
    assert not any(IN_SESSION in note for note in artifact.notes)
    # The file computes the session's weights, not a fresh draw of the worker's.
    np.testing.assert_allclose(onnx_outputs(artifact.path, prepared.probes),
                               prepared.reference_outputs[0], rtol=1e-4, atol=1e-4)


def test_a_builder_made_inside_a_function_is_exported_in_the_session(tmp_path):
    def local_builder(pretrained: bool) -> torch.nn.Module:
        return SmallCNN()

    card = NetworkCard("local_cnn", local_builder, inputs=image_input((1, 3, 16, 16)),
                       num_classes=5, origin=__name__)
    prepared = prepare_network(card, pretrained=False, seed=0, probe_count=2,
                               workdir=tmp_path / "probes")
    artifact = export_artifact(prepared, frameworks.get("onnxruntime"),
                               ArtifactCache(tmp_path / "cache"))
    assert any(IN_SESSION in note and "not defined at the top level" in note
               for note in artifact.notes)
    np.testing.assert_allclose(onnx_outputs(artifact.path, prepared.probes),
                               prepared.reference_outputs[0], rtol=1e-4, atol=1e-4)


TORCH_ABORT = """\
terminate called after throwing an instance of 'c10::Error'
  what():  [enforce fail at inline_container.cc:672] . unexpected pos 1152 vs 1072
frame #0: c10::ThrowEnforceNotMet(char const*, int) + 0x6a (0x7fc8 in libc10.so)
frame #1: <unknown function> + 0x4de47a0 (0x7fc8849e47a0 in libtorch_cpu.so)
<omitting python frames>
frame #22: _start + 0x21 (0x5594aac2f081 in python)

Fatal Python error: Aborted

Thread 0x00007fc87e1ff6c0 (most recent call first):
  File "threading.py", line 331 in wait
  File "tqdm/_monitor.py", line 69 in run

Current thread 0x00007fc89fa83b80 (most recent call first):
  File "torch/jit/_script.py", line 797 in _save_for_lite_interpreter
  File "typing_extensions.py", line 2853 in wrapper
  File "pytest_aiotbench/frameworks/pytorch_mobile.py", line 36 in export

Extension modules: numpy._core._multiarray_umath, torch._C (total: 2)
"""


def test_the_message_of_a_crash_is_the_converters_words_not_its_stack():
    assert tail(TORCH_ABORT) == (
        "terminate called after throwing an instance of 'c10::Error' | what():  [enforce "
        "fail at inline_container.cc:672] . unexpected pos 1152 vs 1072 | Fatal Python "
        "error: Aborted | File \"torch/jit/_script.py\", line 797 in "
        "_save_for_lite_interpreter | File \"typing_extensions.py\", line 2853 in wrapper")
