"""PyTorch Mobile: traced TorchScript saved for the lite interpreter (.ptl)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_aiotbench.frameworks.base import Framework, _version, register_framework

if TYPE_CHECKING:
    import torch

    from pytest_aiotbench.artifacts.delegation import Delegation

#: The namespace of XNNPACK's prepacked operators, which optimize_for_mobile writes where
#: torch has XNNPACK: those run in XNNPACK.
XNNPACK_NAMESPACE = "prepacked"
#: TorchScript's own instructions (constants, attribute reads, lists): no operator.
INTERPRETER_NAMESPACE = "prim"


@register_framework
class PyTorchMobile(Framework):
    name = "pytorch-mobile"
    suffix = ".ptl"
    backend = "cpu"
    device_requirement = "pip install torch (a build with the lite interpreter)"
    device_packages = ("torch",)
    export_packages = ("torch",)

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import torch

        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        notes = ["traced TorchScript for the lite interpreter"]
        try:
            from torch.utils.mobile_optimizer import optimize_for_mobile

            traced = optimize_for_mobile(traced)
            notes.append("optimize_for_mobile applied")
        except RuntimeError as exc:
            if "XNNPACK" not in str(exc):
                raise
            # The CPU wheel is built without XNNPACK; the unoptimised module is still valid.
            notes.append("optimize_for_mobile skipped: this torch build has no XNNPACK")
        traced._save_for_lite_interpreter(str(destination))
        return notes

    def delegation(self, artifact: Path) -> Delegation:
        """The saved module's TorchScript, inlined, by operator: the lite interpreter runs
        ``prepacked::`` operators in XNNPACK and every other one on torch's own (aten)
        kernels. Without prepacked operators (this torch build has no XNNPACK) there is no
        delegate."""
        import torch

        from pytest_aiotbench.artifacts.delegation import NO_DELEGATE, Delegation, counted

        graph = torch.jit.load(str(artifact), map_location="cpu").inlined_graph
        kinds = [node.kind() for node in _nodes(graph)
                 if node.kind().split("::")[0] != INTERPRETER_NAMESPACE]
        xnnpack = [kind for kind in kinds if kind.split("::")[0] == XNNPACK_NAMESPACE]
        return Delegation(
            "XNNPACK" if xnnpack else NO_DELEGATE, counted(xnnpack),
            counted(kind for kind in kinds if kind.split("::")[0] != XNNPACK_NAMESPACE),
            f"torch {_version('torch')}: the module's inlined TorchScript graph, one count per "
            f"operator node ({INTERPRETER_NAMESPACE}:: instructions left out)")


def _nodes(block: torch.Block | torch.Graph) -> Iterator[torch.Node]:
    """The nodes of a graph and of the blocks inside them (an if's branches, a loop's
    body)."""
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _nodes(inner)
