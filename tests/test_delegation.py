"""Delegation facts: each framework's analysis of a real file counts what its delegate takes
and what it leaves outside, and the export stage records them with every cached artifact
(read back, found once for entries stored without them, never failing an export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pytest_aiotbench import frameworks
from pytest_aiotbench.artifacts import (
    ArtifactCache,
    Delegation,
    export_artifact,
    prepare_network,
)
from pytest_aiotbench.artifacts.cache import DELEGATION_KEY
from pytest_aiotbench.artifacts.export_worker import perform
from pytest_aiotbench.networks.card import NetworkCard, image_input
from pytest_aiotbench.runner.protocol import NO_DELEGATE

SHAPE = (1, 3, 16, 16)


class RefusedPool(torch.nn.Module):
    """Two convolutions, each followed by an average pool: one that counts its zero padding,
    as InceptionV3's do (XNNPACK refuses it; the ExecuTorch adapter writes it as a pad and an
    unpadded pool, which XNNPACK takes), and one that rounds its output size up, which
    XNNPACK refuses (ExecuTorch's partitioner says so) and no rewrite changes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AvgPool2d(3, stride=1, padding=1),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AvgPool2d(3, stride=2, ceil_mode=True))
        self.classifier = torch.nn.Linear(8 * 8 * 8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def refused_pool(pretrained: bool) -> torch.nn.Module:
    return RefusedPool()


def exported(framework: str, destination: Path) -> Path:
    """The model written by the framework's real adapter, as the export stage calls it."""
    torch.manual_seed(0)
    perform(frameworks.get(framework), RefusedPool().eval(), "torch", "fp32",
            (np.random.default_rng(0).random(SHAPE, dtype=np.float32),), [], None, destination)
    return destination


def test_the_facts_survive_json_and_add_up():
    facts = Delegation("XNNPACK", {"XNNConv2d": 94, "XNNFullyConnected": 1},
                       {"aten::avg_pool2d": 9}, "a plan")
    assert (facts.delegated_ops, facts.fallback_ops, facts.total_ops) == (95, 9, 104)
    assert not facts.fully_delegated
    assert facts.summary() == "95 of 104 ops in XNNPACK; outside: aten::avg_pool2d x9"
    assert Delegation.from_json(json.loads(json.dumps(facts.to_json()))) == facts
    none = Delegation(NO_DELEGATE, {}, {"aten::linear": 1}, "a graph")
    assert not none.fully_delegated and none.summary().startswith("no delegate: all 1 ops")


def test_executorch_counts_the_refused_pool_outside_xnnpack(tmp_path):
    facts = frameworks.get("executorch").delegation(exported("executorch", tmp_path / "m.pte"))
    assert facts.delegate == "XNNPACK"
    assert facts.fallback == {"aten::avg_pool2d": 1}  # the ceil_mode pool
    # The payloads are read node by node: both convolutions, the padded pool as the pad and
    # the pool the export wrote for it, and the linear layer.
    assert facts.delegated["XNNConv2d"] == 2
    assert facts.delegated["XNNStaticConstantPad"] == 1
    assert facts.delegated["XNNAvgPooling2d"] == 1
    assert facts.delegated["XNNFullyConnected"] == 1
    assert "XNNPACK payloads" in facts.source and "could not be read" not in facts.source


def test_pytorch_mobile_runs_every_operator_on_its_own_kernels(tmp_path):
    facts = frameworks.get("pytorch-mobile").delegation(
        exported("pytorch-mobile", tmp_path / "m.ptl"))
    # This torch has no XNNPACK: no prepacked operators, no delegate.
    assert facts.delegate == NO_DELEGATE and facts.delegated == {}
    assert facts.fallback["aten::_convolution"] == 2
    assert facts.fallback["aten::relu"] == 2
    assert facts.fallback["aten::avg_pool2d"] == 2
    assert facts.fallback["aten::linear"] == 1
    assert not any(op.startswith("prim::") for op in facts.fallback)


def tflite_with_a_six_way_concatenation(path: Path) -> None:
    """CONV_2D, a CONCATENATION of six inputs (XNNPACK takes at most five, as two of
    InceptionV3's show), CONV_2D: a TFLite file written with LiteRT's own schema."""
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import Builder

    rng = np.random.default_rng(0)
    buffers = [schema.BufferT()]  # buffer 0: no data, by convention

    def tensor(name: str, shape: tuple[int, ...], data: np.ndarray | None = None):
        made = schema.TensorT()
        made.name, made.shape, made.type = name, list(shape), schema.TensorType.FLOAT32
        made.buffer = 0
        if data is not None:
            buffers.append(schema.BufferT())
            buffers[-1].data = np.asarray(data, np.float32).tobytes()
            made.buffer = len(buffers) - 1
        return made

    def conv(inputs: list[int], output: int):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, inputs, [output]
        op.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
        op.builtinOptions = schema.Conv2DOptionsT()
        op.builtinOptions.padding = schema.Padding.SAME
        op.builtinOptions.strideH = op.builtinOptions.strideW = 1
        op.builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU
        return op

    tensors = [tensor("input", (1, 8, 8, 3)),
               tensor("w1", (4, 3, 3, 3), rng.standard_normal((4, 3, 3, 3))),
               tensor("b1", (4,), np.zeros(4)), tensor("h1", (1, 8, 8, 4)),
               tensor("joined", (1, 8, 8, 24)),
               tensor("w2", (2, 1, 1, 24), rng.standard_normal((2, 1, 1, 24))),
               tensor("b2", (2,), np.zeros(2)), tensor("output", (1, 8, 8, 2))]
    join = schema.OperatorT()
    join.opcodeIndex, join.inputs, join.outputs = 1, [3] * 6, [4]
    join.builtinOptionsType = schema.BuiltinOptions.ConcatenationOptions
    join.builtinOptions = schema.ConcatenationOptionsT()
    join.builtinOptions.axis = 3
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs = tensors, [0], [7]
    graph.operators = [conv([0, 1, 2], 3), join, conv([4, 5, 6], 7)]
    codes = []
    for builtin in (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.CONCATENATION):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        codes.append(code)
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, codes, [graph], \
        buffers
    builder = Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def test_tflite_xnnpack_takes_the_convolutions_around_what_it_refuses(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    path = tmp_path / "m.tflite"
    tflite_with_a_six_way_concatenation(path)
    interpreter = Interpreter(model_path=str(path))  # the file runs, with the delegate
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.ones((1, 8, 8, 3), np.float32))
    interpreter.invoke()
    facts = frameworks.get("tflite").delegation(path)
    # Two partitions, one each side of the concatenation the delegate left to LiteRT.
    assert facts.delegate == "XNNPACK"
    assert facts.delegated == {"CONV_2D": 2}
    assert facts.fallback == {"CONCATENATION": 1}


def test_onnxruntime_counts_the_graph_it_optimised_fp32_and_int8(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) / 4, name)
               for name, shape in (("w1", (8, 3, 3, 3)), ("w2", (8, 8, 3, 3)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["y"])]
    graph = helper.make_graph(
        nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], weights)
    fp32 = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), fp32)
    adapter = frameworks.get("onnxruntime")

    facts = adapter.delegation(fp32)
    assert facts.delegate == "CPUExecutionProvider" and facts.fallback == {}
    # Each Relu is fused into its convolution (FusedConv, or an NCHWc Conv on this CPU).
    assert "Relu" not in facts.delegated
    assert sum(n for op, n in facts.delegated.items() if op.endswith("Conv")) == 2

    calibration = [(rng.random(SHAPE, dtype=np.float32),) for _ in range(2)]
    int8 = tmp_path / "m-int8.onnx"
    adapter.make_variant("int8", fp32, None, None, calibration, int8)
    facts = adapter.delegation(int8)
    in_file = [node.op_type for node in onnx.load(str(int8)).graph.node]
    # The QDQ file's pairs fold into quantized convolutions; the boundary's stay.
    assert sum(n for op, n in facts.delegated.items() if op.endswith("QLinearConv")) == 2
    assert facts.delegated["QuantizeLinear"] >= 1 and facts.delegated["DequantizeLinear"] >= 1
    assert facts.delegated["DequantizeLinear"] < in_file.count("DequantizeLinear")
    assert facts.total_ops < len(in_file)


def test_the_export_stage_records_the_facts_once_per_entry(tmp_path):
    card = NetworkCard("refused_pool", refused_pool, inputs=image_input(SHAPE), num_classes=5,
                       origin=__name__)
    prepared = prepare_network(card, pretrained=False, seed=0, probe_count=1,
                               workdir=tmp_path / "probes")
    cache = ArtifactCache(tmp_path / "cache")
    adapter = frameworks.get("pytorch-mobile")
    built = export_artifact(prepared, adapter, cache)  # in the export worker
    assert built.built and built.delegation is not None
    assert built.delegation.fallback["aten::avg_pool2d"] == 2
    assert built.to_json()["delegation"] == built.delegation.to_json()
    meta_path = built.path.parent / "meta.json"
    assert Delegation.from_json(json.loads(meta_path.read_text())[DELEGATION_KEY]) \
        == built.delegation

    served = export_artifact(prepared, adapter, cache)
    assert not served.built and served.delegation == built.delegation

    # An entry stored before the facts were recorded: found once, and recorded.
    meta = json.loads(meta_path.read_text())
    del meta[DELEGATION_KEY]
    meta_path.write_text(json.dumps(meta))
    again = export_artifact(prepared, adapter, cache)
    assert not again.built and again.delegation == built.delegation
    assert DELEGATION_KEY in json.loads(meta_path.read_text())


def test_a_failed_analysis_never_fails_the_export(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    calls = []

    def build(destination: Path) -> list[str]:
        destination.write_bytes(b"artifact bytes")
        return ["exported"]

    def describe(path: Path) -> Delegation:
        calls.append(path)
        raise ValueError("no operators in this file")

    parts = {"network": "n", "framework": "f"}
    first = cache.get_or_build("n-f", parts, "n.bin", build, describe=describe)
    assert first.built and first.delegation is None
    assert first.notes == ("exported", "delegation not analysed: ValueError: no operators in "
                                       "this file")
    assert first.to_json()["delegation"] is None
    # Recorded as tried: a served entry is not analysed again.
    second = cache.get_or_build("n-f", parts, "n.bin", build, describe=describe)
    assert second.notes == first.notes and second.delegation is None and len(calls) == 1

