"""ExecuTorch: torch.export, lowered to the XNNPACK delegate, saved as a .pte program."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_aiotbench.frameworks.base import Framework, _version, register_framework

if TYPE_CHECKING:
    from pytest_aiotbench.artifacts.delegation import Delegation

#: The id ExecuTorch gives the XNNPACK backend in a program's delegates.
XNNPACK_BACKEND = "XnnpackBackend"


def _unchecked() -> Any:
    """The edge compile config without its IR validity check: the same program, a quarter
    of the lowering's time less (resnet50: 11.2 s against 14.6 s, a byte-identical .pte);
    the deployed program's answers are checked against fp32 on every run anyway."""
    from executorch.exir import EdgeCompileConfig

    return EdgeCompileConfig(_check_ir_validity=False)


@register_framework
class ExecuTorch(Framework):
    name = "executorch"
    suffix = ".pte"
    backend = "xnnpack"
    device_requirement = "pip install executorch"
    device_packages = ("executorch",)
    export_packages = ("torch", "executorch", "torchao")
    export_revision = 2  # 2: a padded average pool as pad + pool, both in XNNPACK

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        exported = torch.export.export(model, example)
        program = to_edge_transform_and_lower(
            exported, transform_passes=[_explicit_pool_padding()],
            partitioner=[XnnpackPartitioner()], compile_config=_unchecked()).to_executorch()
        destination.write_bytes(program.buffer)
        return ["torch.export lowered to XNNPACK; average pools that count their padding "
                "written as an explicit zero pad and an unpadded pool (XNNPACK takes both)"]

    variants = ("int8",)

    def make_variant(self, variant: str, fp32_artifact: Path, model: Any, example: Any,
                     calibration: list[Any], destination: Path) -> list[str]:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from executorch.exir import to_edge_transform_and_lower
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = XNNPACKQuantizer().set_global(
            get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
        for batch in calibration:
            prepared(*(torch.as_tensor(one) for one in batch))
        quantized = torch.export.export(convert_pt2e(prepared), example)
        program = to_edge_transform_and_lower(
            quantized, partitioner=[XnnpackPartitioner()]).to_executorch()
        destination.write_bytes(program.buffer)
        return [f"int8 (PT2E XNNPACKQuantizer, per-channel), calibrated on {len(calibration)} "
                "inputs"]

    def delegation(self, artifact: Path) -> Delegation:
        """The program's execution plan: each KernelCall runs an operator on ExecuTorch's
        own kernels (portable or optimized: outside the delegate); each DelegateCall runs an
        XNNPACK graph, whose nodes are counted by type where the installed executorch reads
        its payload."""
        from executorch.exir._serialize._program import deserialize_pte_binary
        from executorch.exir.schema import DataLocation, DelegateCall, KernelCall

        from pytest_aiotbench.artifacts.delegation import Delegation, counted

        program = deserialize_pte_binary(artifact.read_bytes()).program
        fallback: list[str] = []
        payloads: list[bytes] = []
        other: list[str] = []  # delegate calls whose graph is not read: one count a call
        for plan in program.execution_plan:
            for chain in plan.chains:
                for instruction in chain.instructions:
                    call = instruction.instr_args
                    if isinstance(call, KernelCall):
                        fallback.append(plan.operators[call.op_index].name)
                    elif isinstance(call, DelegateCall):
                        delegate = plan.delegates[call.delegate_index]
                        if delegate.id != XNNPACK_BACKEND:
                            other.append(f"{delegate.id} call")
                        elif delegate.processed.location == DataLocation.INLINE:
                            payloads.append(bytes(
                                program.backend_delegate_data[delegate.processed.index].data))
                        else:  # not restored by the reader: counted as a call
                            other.append("XNNPACK call (payload in a segment)")
        source = (f"executorch {_version('executorch')}: the program's execution plan "
                  "(KernelCall operators outside the delegate) and its XNNPACK payloads")
        try:
            delegated = _xnnpack_node_types(payloads)
        except Exception as exc:  # the payload's layout is XNNPACK's own; the calls still count
            delegated = ["XNNPACK call"] * len(payloads)
            source += (f" (their nodes could not be read: {type(exc).__name__}: {exc}; each "
                       "counted as one call)")
        return Delegation("XNNPACK", counted([*delegated, *other]), counted(fallback), source)


def _xnnpack_node_types(payloads: list[bytes]) -> list[str]:
    """The node types (XNNConv2d, XNNFullyConnected, ...) of XNNPACK graphs as the
    XNNPACK backend serialised them: its header, then its flatbuffer, which flatc (shipped
    with executorch) turns into JSON with the backend's own schema."""
    if not payloads:
        return []
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import (
        XNNHeader,
        _get_schema_bytes,
    )
    from executorch.exir._serialize._flatbuffer import _run_flatc

    with tempfile.TemporaryDirectory(prefix="aiotbench-xnnpack-") as scratch:
        folder = Path(scratch)
        (folder / "schema.fbs").write_bytes(_get_schema_bytes())
        graphs = []
        for number, payload in enumerate(payloads):
            header = XNNHeader.from_bytes(payload[:XNNHeader.EXPECTED_LENGTH])
            start = header.flatbuffer_offset
            graphs.append(folder / f"graph{number}.bin")
            graphs[-1].write_bytes(payload[start:start + header.flatbuffer_size])
        _run_flatc(["--json", "--strict-json", "--defaults-json", "-o", scratch,
                    str(folder / "schema.fbs"), "--", *map(str, graphs)])
        return [node_type for graph in graphs for node_type in _XNODE_TYPE.findall(
            graph.with_suffix(".json").read_text())]


#: A node's type in flatc's JSON of an XNNPACK graph (reading the whole JSON would need
#: its non-standard ``inf`` bounds rewritten first).
_XNODE_TYPE = re.compile(r'"xnode_union_type":\s*"(\w+)"')


def _explicit_pool_padding() -> Any:
    """avg_pool2d(x, k, s, p) counting the padding (PyTorch's default) equals
    avg_pool2d(pad(x, p, 0), k, s, 0): the divisor is k*k either way. XNNPACK's partitioner
    refuses the first and takes both halves of the second; left out, each such pooling runs on
    ExecuTorch's portable kernel between two delegate calls (inception_v3: 9 of them, half its
    time in the profile). fp32 only: XNNPACK cannot build the pad of a quantized tensor."""
    from executorch.exir.dialects._ops import ops as exir_ops
    from executorch.exir.pass_base import ExportPass

    avg_pool = exir_ops.edge.aten.avg_pool2d.default
    pad = exir_ops.edge.aten.constant_pad_nd.default
    defaults = (None, None, [], [0, 0], False, True, None)

    class ExplicitPoolPadding(ExportPass):
        def call_operator(self, op, args, kwargs, meta):
            if op == avg_pool:
                x, kernel, stride, padding, ceil_mode, count_pad, divisor = (
                    *args, *defaults[len(args):])
                if count_pad and any(padding) and not ceil_mode and divisor is None:
                    ph, pw = list(padding) * 2 if len(padding) == 1 else padding
                    padded = super().call_operator(pad, (x, [pw, pw, ph, ph], 0.0), {}, meta)
                    return super().call_operator(
                        avg_pool, (padded, kernel, stride or kernel, [0, 0], False, True),
                        {}, meta)
            return super().call_operator(op, args, kwargs, meta)

    return ExplicitPoolPadding()
