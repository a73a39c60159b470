"""ONNX Runtime, in the place of Caffe2 (retired; ONNX was the route its models took)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_aiotbench.frameworks.base import (
    Framework,
    ImplementationUnsupported,
    _version,
    register_framework,
)

if TYPE_CHECKING:
    import onnx

    from pytest_aiotbench.artifacts.delegation import Delegation

#: The ONNX opset tf2onnx writes (the torch exporter picks its own).
ONNX_OPSET = 17
#: The execution provider the runners ask for: its kernels (MLAS) run every node.
PROVIDER = "CPUExecutionProvider"
#: The ONNX domains whose operators are named without their domain.
DEFAULT_DOMAINS = ("", "ai.onnx")


@register_framework
class OnnxRuntime(Framework):
    name = "onnxruntime"
    suffix = ".onnx"
    backend = "cpu"
    device_requirement = "pip install onnxruntime"
    device_packages = ("onnxruntime",)
    export_packages = ("torch", "onnx", "onnxscript", "onnxruntime")

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import torch

        program = torch.onnx.export(model, example, dynamo=True, verbose=False)
        # One self-contained file: the device gets one push, not a model plus a data file.
        program.save(str(destination), external_data=False)
        return ["torch.onnx.export(dynamo=True); CPU provider, ORT_ENABLE_ALL"]

    variants = ("dynamic-int8", "int8")

    def make_variant(self, variant: str, fp32_artifact: Path, model: Any, example: Any,
                     calibration: list[Any], destination: Path) -> list[str]:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory(prefix="aiotbench-onnx-") as scratch:
            # Shape inference first: the dynamo exporter's value_info otherwise clashes
            # with the quantizer's Gemm -> MatMul rewrite.
            prepared = str(Path(scratch) / "prepared.onnx")
            quant_pre_process(str(fp32_artifact), prepared)
            if variant == "dynamic-int8":
                quantize_dynamic(prepared, str(destination), weight_type=QuantType.QInt8,
                                 per_channel=True)
                return ["dynamic int8 (onnxruntime.quantization), per-channel weights"]
            names = [one.name for one in
                     onnx.load(prepared, load_external_data=False).graph.input]
            feeds = iter([dict(zip(names, batch, strict=True)) for batch in calibration])

            class Feeds(CalibrationDataReader):
                def get_next(self) -> dict | None:
                    return next(feeds, None)

            quantize_static(prepared, str(destination), Feeds(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
        return [f"static int8 QDQ (uint8 activations, int8 per-channel weights), calibrated on "
                f"{len(calibration)} inputs"]

    def delegation(self, artifact: Path) -> Delegation:
        """The graph a runner's session really runs: the file after ONNX Runtime's
        optimisations (fusions, QDQ folding, NCHWc layouts), by operator type. Every node is
        placed on the one provider the session is given."""
        import onnx
        import onnxruntime as ort

        from pytest_aiotbench.artifacts.delegation import Delegation, counted

        with tempfile.TemporaryDirectory(prefix="aiotbench-ort-graph-") as scratch:
            optimized = Path(scratch) / "optimized.onnx"
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = 1
            # Its warning that an NCHWc graph suits this CPU only: the source says so.
            options.log_severity_level = 3
            options.optimized_model_filepath = str(optimized)
            # Weights beside the graph, so that reading the graph does not read them.
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", "weights.bin")
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes", "1024")
            session = ort.InferenceSession(str(artifact), options, providers=[PROVIDER])
            providers = session.get_providers()
            del session
            op_types = [_op_type(node) for node in
                        _nodes(onnx.load(str(optimized), load_external_data=False).graph)]
        if providers != [PROVIDER]:
            raise RuntimeError(f"the session placed nodes on {', '.join(providers)}, not on "
                               f"{PROVIDER} alone: which node runs where is not known")
        return Delegation(
            PROVIDER, counted(op_types), {},
            f"onnxruntime {_version('onnxruntime')}: the graph its session optimised "
            f"(ORT_ENABLE_ALL, {PROVIDER}, this host's CPU: layout choices such as NCHWc "
            "may differ on another), every node on that provider")


@register_framework
class OnnxRuntimeFromKeras(OnnxRuntime):
    """A Keras network through tf2onnx, the converter from TensorFlow; the variants are
    onnxruntime's quantization of that file, as for torch networks."""

    implementation = "keras"
    export_packages = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime")

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        try:
            import tf2onnx
        except Exception as exc:  # missing, or broken against this TensorFlow or numpy
            raise ImplementationUnsupported(
                f"onnxruntime takes a Keras model through tf2onnx, which cannot be imported "
                f"here ({type(exc).__name__}: {exc}): pip install tf2onnx") from None
        import tensorflow as tf

        from pytest_aiotbench.networks.implementations import keras_call, keras_specs

        function = tf.function(lambda *batch: model(keras_call(batch), training=False))
        tf2onnx.convert.from_function(function, input_signature=keras_specs(example),
                                      opset=ONNX_OPSET, output_path=str(destination))
        return [f"converted by tf2onnx (opset {ONNX_OPSET}) from the Keras model; input NHWC; "
                "CPU provider, ORT_ENABLE_ALL"]


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """The graph's nodes and those of its subgraphs (an If's branches, a Loop's body)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                yield from _nodes(attribute.g)
            elif attribute.type == attribute.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _nodes(subgraph)


def _op_type(node: onnx.NodeProto) -> str:
    """The operator's type, with its domain where that is not ONNX's own: ONNX Runtime's
    ``com.microsoft.nchwc:Conv`` is another kernel than ``Conv``."""
    return node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}:{node.op_type}"
