"""PyTorch Mobile: traced TorchScript saved for the lite interpreter (.ptl)."""

from __future__ import annotations

import copy
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


def _traced(model: Any, example: Any) -> Any:
    """One trace of the model on the example. strict=False: a dict or list of outputs is
    traced as it is returned. check_trace=False: torch's check traces the model a second
    time to compare the two, which doubles the cost; the deployed file's answers are checked
    against the fp32 model on every run anyway."""
    import torch

    with torch.no_grad():
        return torch.jit.trace(model, example, strict=False, check_trace=False)


@register_framework
class PyTorchMobile(Framework):
    name = "pytorch-mobile"
    suffix = ".ptl"
    backend = "cpu"
    device_requirement = "pip install torch (a build with the lite interpreter)"
    device_packages = ("torch",)
    export_packages = ("torch",)
    export_revision = 2  # 2: frozen, channels-last weights where optimize_for_mobile cannot run

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import torch
        import torch.backends.xnnpack

        notes = ["traced TorchScript for the lite interpreter"]
        if torch.backends.xnnpack.enabled:
            from torch.utils.mobile_optimizer import optimize_for_mobile

            traced = optimize_for_mobile(_traced(model, example))
            notes.append("optimize_for_mobile applied")
        else:
            # The CPU wheel is built without XNNPACK, so optimize_for_mobile cannot run. What
            # it would also do without it, done here: freezing folds each BatchNorm into its
            # convolution (20% of mobilenet_v2's time in the profile), and channels-last
            # weights spare oneDNN a reorder per call (mobilenet_v2 0.68x the time on 1
            # thread, inception_v3 0.73x, outputs within 1e-6).
            notes.append("optimize_for_mobile skipped: this torch build has no XNNPACK; frozen "
                         "(BatchNorm folded) with channels-last weights instead")
            channels_last = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
            traced = torch.jit.freeze(_traced(channels_last, example))
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
