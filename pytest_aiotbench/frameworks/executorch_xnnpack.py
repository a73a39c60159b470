"""ExecuTorch: torch.export, lowered to the XNNPACK delegate, saved as a .pte program."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_aiotbench.frameworks.base import Framework, register_framework


@register_framework
class ExecuTorch(Framework):
    name = "executorch"
    suffix = ".pte"
    backend = "xnnpack"
    device_requirement = "pip install executorch"
    device_packages = ("executorch",)
    export_packages = ("torch", "executorch", "torchao")

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        exported = torch.export.export(model, (example,))
        program = to_edge_transform_and_lower(
            exported, partitioner=[XnnpackPartitioner()]).to_executorch()
        destination.write_bytes(program.buffer)
        return ["torch.export lowered to XNNPACK", *_delegation_notes(program)]

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
        prepared = prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer)
        for batch in calibration:
            prepared(torch.as_tensor(batch))
        quantized = torch.export.export(convert_pt2e(prepared), (example,))
        program = to_edge_transform_and_lower(
            quantized, partitioner=[XnnpackPartitioner()]).to_executorch()
        destination.write_bytes(program.buffer)
        return [f"int8 (PT2E XNNPACKQuantizer, per-channel), calibrated on {len(calibration)} "
                "inputs", *_delegation_notes(program)]


def _delegation_notes(program: Any) -> list[str]:
    delegated, total = _delegation(program)
    if total and delegated < total:
        return [f"{total - delegated} of {total} operator calls not delegated to XNNPACK"]
    return []


def _delegation(program: Any) -> tuple[int, int]:
    """(delegated, total) top-level calls in the program's forward plan."""
    try:
        plan = program.executorch_program.execution_plan[0]
        calls = [chain_instr for chain in plan.chains for chain_instr in chain.instructions]
        delegated = sum(type(c.instr_args).__name__ == "DelegateCall" for c in calls)
        total = sum(type(c.instr_args).__name__ in ("DelegateCall", "KernelCall") for c in calls)
        return delegated, total
    except Exception:  # the program's layout is internal; the note is optional
        return 0, 0
