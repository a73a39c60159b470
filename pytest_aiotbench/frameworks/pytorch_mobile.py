"""PyTorch Mobile: traced TorchScript saved for the lite interpreter (.ptl)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_aiotbench.frameworks.base import Framework, register_framework


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
