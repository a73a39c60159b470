"""The workload identity: one key, one id format, one parser (in-process, milliseconds)."""

from __future__ import annotations

import itertools

import pytest

from pytest_aiotbench import frameworks
from pytest_aiotbench.identity import (
    VARIANTS,
    WorkloadIdError,
    WorkloadKey,
    framework_label,
    network_label,
)
from pytest_aiotbench.matrix import ArtifactChoice, NetworkChoice
from pytest_aiotbench.networks import IMPLEMENTATIONS


def test_ids_leave_the_defaults_out():
    assert WorkloadKey("local", "resnet50", "tflite").id == "resnet50-tflite-local"
    key = WorkloadKey("Pixel_8", "resnet50", "onnxruntime", "int8", "keras")
    assert key.id == "resnet50-keras-onnxruntime-int8-Pixel_8"
    assert key.label == "resnet50-keras-onnxruntime-int8"
    # The backend is the framework's own unless it says otherwise, and then the id says it.
    assert WorkloadKey("local", "resnet50", "tflite").backend == "xnnpack"
    assert WorkloadKey("b", "m", "tflite", backend="gpu").id == "m-tflite+gpu-b"


@pytest.mark.parametrize(("network", "device"), [
    ("resnet50", "local"), ("tiny_cnn", "AIoT_Board"), ("edge-net", "Pixel 8-2"),
    ("net-onnx", "dev-tflite-x"), ("mobilenet_v2", "10.0.0.2:5555")])
def test_every_id_parses_back_to_its_key(network, device):
    """Network and device names may hold dashes, even framework-like words."""
    for framework, variant, implementation in itertools.product(
            frameworks.names(), VARIANTS, IMPLEMENTATIONS):
        key = WorkloadKey(device, network, framework, variant, implementation)
        assert WorkloadKey.parse(key.id) == key
        assert WorkloadKey.from_nodeid(f"tests/test_x.py::test_workload[{key.id}]") == key


def test_pytest_joins_the_axes_ids_into_the_key_id():
    """The three parametrized axes' ids, joined by pytest with '-', are the key's id."""
    key = WorkloadKey("Pixel_8", "resnet50", "pytorch-mobile", "dynamic-int8", "keras")
    joined = "-".join([NetworkChoice(key.network, key.implementation).id,
                       ArtifactChoice(key.framework, key.variant).id, key.device])
    assert joined == key.id
    assert network_label("resnet50") == "resnet50"
    assert framework_label("tflite", "fp32") == "tflite"


def test_what_is_not_a_workload_id_is_said_so():
    with pytest.raises(WorkloadIdError, match="'resnet50-caffe2-local' is not a workload id"):
        WorkloadKey.parse("resnet50-caffe2-local")
    assert WorkloadKey.from_nodeid("tests/test_x.py::test_other") is None
    assert WorkloadKey.from_nodeid("tests/test_x.py::test_param[3-4]") is None


def test_rows_of_older_files_get_the_defaults():
    row = {"device": "local", "network": "resnet50", "framework": "onnxruntime"}
    assert WorkloadKey.from_json(row) == WorkloadKey("local", "resnet50", "onnxruntime", "fp32",
                                                     "torch", "cpu")
    key = WorkloadKey("b", "n", "executorch", "int8", "torch")
    assert WorkloadKey.from_json(key.to_json()) == key
