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
    export_packages = ("torch", "executorch")

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        exported = torch.export.export(model, (example,))
        program = to_edge_transform_and_lower(
            exported, partitioner=[XnnpackPartitioner()]).to_executorch()
        destination.write_bytes(program.buffer)
        delegated, total = _delegation(program)
        notes = ["torch.export lowered to XNNPACK"]
        if total and delegated < total:
            notes.append(f"{total - delegated} of {total} operator calls not delegated to XNNPACK")
        return notes


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
