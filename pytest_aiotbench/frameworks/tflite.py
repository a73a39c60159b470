"""TensorFlow Lite (LiteRT): litert-torch converts the PyTorch module with its own weights."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_aiotbench.frameworks.base import Framework, _version, register_framework

if TYPE_CHECKING:
    from pytest_aiotbench.artifacts.delegation import Delegation

#: The interpreter's node that stands for one partition its delegate took.
DELEGATE_NODE = "DELEGATE"


@register_framework
class TFLite(Framework):
    name = "tflite"
    suffix = ".tflite"
    backend = "xnnpack"
    device_requirement = "pip install ai-edge-litert (or tflite-runtime)"
    device_packages = ("ai-edge-litert", "tflite-runtime")
    export_packages = ("torch", "litert-torch", "ai-edge-quantizer")

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import litert_torch
        import torch

        converted = litert_torch.convert(model, example)
        converted.export(str(destination))
        notes = ["converted by litert-torch; input kept in NCHW"]
        if any(getattr(one, "dtype", None) is torch.int64 for one in example):
            notes.append("litert-torch makes int64 inputs int32: the runners feed them so")
        return notes

    variants = ("fp16", "dynamic-int8", "int8")

    def make_variant(self, variant: str, fp32_artifact: Path, model: Any, example: Any,
                     calibration: list[Any], destination: Path) -> list[str]:
        # ai-edge-quantizer rewrites the converted .tflite: the same graph, other weights.
        import numpy as np
        from ai_edge_quantizer import qtyping, quantizer, recipe

        if variant == "fp16":
            tool = quantizer.Quantizer(str(fp32_artifact))
            tool.add_weight_only_config(regex=".*",
                                        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                        num_bits=16,
                                        algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING)
            tool.quantize(enable_progress_report=False).export_model(str(destination),
                                                                      overwrite=True)
            return ["float16 weights (ai-edge-quantizer float casting), float32 compute"]
        if variant == "dynamic-int8":
            tool = quantizer.Quantizer(str(fp32_artifact), recipe.dynamic_wi8_afp32())
            tool.quantize(enable_progress_report=False).export_model(str(destination),
                                                                      overwrite=True)
            return ["dynamic-range int8: int8 per-channel weights, activations quantized at "
                    "run time (ai-edge-quantizer)"]
        key, inputs = _signature_inputs(fp32_artifact)
        tool = quantizer.Quantizer(str(fp32_artifact), recipe.static_wi8_ai8())
        for boundary in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            # Keep float input and output: the runner feeds every variant the same tensors.
            tool.update_quantization_recipe(regex=".*", operation_name=boundary,
                                            algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE)
        # Fed as the runners feed the file: int64 ids as the int32 litert-torch declares.
        samples = [{name: np.asarray(values, dtype) for (name, dtype), values
                    in zip(inputs, batch, strict=True)} for batch in calibration]
        ranges = tool.calibrate({key: samples}, num_threads=2)
        tool.quantize(ranges, enable_progress_report=False).export_model(str(destination),
                                                                         overwrite=True)
        return [f"full int8 weights and activations, calibrated on {len(calibration)} inputs; "
                "float input/output"]

    def delegation(self, artifact: Path) -> Delegation:
        """The nodes LiteRT's default delegate (XNNPACK) replaced when the interpreter
        allocated its tensors, as the runner's interpreter does, by builtin operator."""
        from ai_edge_litert.interpreter import Interpreter

        from pytest_aiotbench.artifacts.delegation import Delegation, counted

        interpreter = Interpreter(model_path=str(artifact), num_threads=1)
        interpreter.allocate_tensors()  # the default delegate takes its partitions here
        ops = interpreter._get_ops_details()  # the primary subgraph's nodes, delegates last
        taken = _delegated_nodes(ops)
        return Delegation(
            "XNNPACK",
            counted(ops[index]["op_name"] for index in sorted(taken)),
            counted(op["op_name"] for op in ops
                    if op["op_name"] != DELEGATE_NODE and op["index"] not in taken),
            f"ai-edge-litert {_version('ai-edge-litert')} Interpreter with its default XNNPACK "
            f"delegate: the nodes each {DELEGATE_NODE} node replaced, traced from its outputs "
            "back to its inputs")


def _signature_inputs(artifact: Path) -> tuple[str, list[tuple[str, Any]]]:
    """The file's signature key and its inputs' (name, dtype) in the graph's order, the
    forward's, which the runners feed (the signature sorts its names)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(artifact))
    key = next(iter(interpreter.get_signature_list()))
    by_tensor = {details["index"]: (name, details["dtype"]) for name, details
                 in interpreter.get_signature_runner(key).get_input_details().items()}
    return key, [by_tensor[details["index"]] for details in interpreter.get_input_details()]


def _delegated_nodes(ops: list[dict[str, Any]]) -> set[int]:
    """The indices of the nodes inside the delegate's partitions. The interpreter does not
    show its execution plan, but each delegate node keeps its partition's boundary: every
    node that computes one of its outputs from its inputs is one it replaced."""
    producer = {int(tensor): op["index"] for op in ops if op["op_name"] != DELEGATE_NODE
                for tensor in op["outputs"]}
    taken: set[int] = set()
    for node in (op for op in ops if op["op_name"] == DELEGATE_NODE):
        boundary = {int(tensor) for tensor in node["inputs"]}
        pending = [int(tensor) for tensor in node["outputs"]]
        while pending:
            tensor = pending.pop()
            index = producer.get(tensor)
            if tensor in boundary or index is None or index in taken:
                continue
            taken.add(index)
            pending.extend(int(t) for t in ops[index]["inputs"] if t >= 0)
    return taken


@register_framework
class TFLiteFromKeras(TFLite):
    """A Keras network through TensorFlow's own converter and its own quantization."""

    implementation = "keras"
    export_packages = ("tensorflow", "keras")
    # 2: batch 1 fixed in the file (the native runner takes no -1); 3: inputs and outputs
    # in the model's order
    export_revision = 3

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        destination.write_bytes(_converted(_keras_converter(model, example)))
        return ["converted by TensorFlow's TFLiteConverter from the Keras model; input NHWC"]

    def make_variant(self, variant: str, fp32_artifact: Path, model: Any, example: Any,
                     calibration: list[Any], destination: Path) -> list[str]:
        import tensorflow as tf

        converter = _keras_converter(model, example)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "fp16":
            converter.target_spec.supported_types = [tf.float16]
            note = "float16 weights (TFLiteConverter), float32 compute"
        elif variant == "dynamic-int8":
            note = ("dynamic-range int8 (TFLiteConverter): int8 weights, activations quantized "
                    "at run time")
        else:
            converter.representative_dataset = lambda: (list(batch) for batch in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            # Input and output stay float: the runner feeds every variant the same tensors.
            note = (f"full int8 weights and activations (TFLiteConverter), calibrated on "
                    f"{len(calibration)} inputs; float input/output")
        destination.write_bytes(_converted(converter))
        return [note]


def _keras_converter(model: Any, example: Any) -> Any:
    """The converter of the model at the example's shape: keras.applications leave the batch
    open (-1), which the native runner's TFLite backend refuses; every artifact takes
    batch 1."""
    import keras
    import tensorflow as tf

    from pytest_aiotbench.networks.implementations import keras_call, keras_input_names

    # Named by their place: the converter may list them in another order (see below).
    inputs = keras_call([keras.Input(tuple(one.shape[1:]), batch_size=one.shape[0],
                                     dtype=str(one.dtype), name=name)
                         for one, name in zip(example, keras_input_names(len(example)),
                                              strict=True)])
    return tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, model(inputs)))


def _converted(converter: Any) -> bytes:
    """The converter's flatbuffer; its refusal as one line naming the operations it could
    not convert (its own message is a page of MLIR locations)."""
    try:
        return _in_model_order(converter.convert())
    except Exception as exc:
        unsupported = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a "
                                             r"flex op", str(exc))))
        if not unsupported:
            raise
        raise RuntimeError(
            f"TensorFlow's TFLiteConverter refused the model: {', '.join(unsupported)} "
            "has no TFLite builtin (it would need TensorFlow's Select ops, which the "
            "TFLite runtimes on devices do not carry)") from None


def _in_model_order(flatbuffer: bytes) -> bytes:
    """The file with its graph's inputs and outputs in the model's order, which the runners
    feed and read. TFLiteConverter lists a Keras model's in an order of its own (ids and mask
    came out mask first, a list's [scores, pooled] pooled first); each name ends with its
    place: an input's in ours (``serving_default_input_<k>:0``), an output's in the model's
    flattened answer (``StatefulPartitionedCall_1:<k>``)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    inputs = _by_place(graph, graph.inputs, r"_input_(\d+):0$")
    outputs = _by_place(graph, graph.outputs, r":(\d+)$")
    if inputs is None and outputs is None:
        return flatbuffer
    graph.inputs = graph.inputs if inputs is None else inputs
    graph.outputs = graph.outputs if outputs is None else outputs
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _by_place(graph: Any, tensors: Any, place: str) -> list[int] | None:
    """The tensors sorted by the place their names end with (None: in order already, or
    names that do not say)."""
    names = [graph.tensors[index].name for index in tensors]
    found = [re.search(place, name.decode() if isinstance(name, bytes) else name)
             for name in names]
    if not all(found):
        return None
    order = [int(one.group(1)) for one in found]
    if order == sorted(order) or sorted(order) != list(range(len(order))):
        return None
    return [tensor for _, tensor in sorted(zip(order, tensors, strict=True))]
