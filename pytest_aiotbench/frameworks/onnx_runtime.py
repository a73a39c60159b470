"""ONNX Runtime, in the place of Caffe2 (retired; ONNX was the route its models took)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_aiotbench.frameworks.base import Framework, register_framework


@register_framework
class OnnxRuntime(Framework):
    name = "onnxruntime"
    suffix = ".onnx"
    backend = "cpu"
    device_requirement = "pip install onnxruntime"
    export_packages = ("torch", "onnx", "onnxscript")

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import torch

        program = torch.onnx.export(model, (example,), dynamo=True, verbose=False)
        # One self-contained file: the device gets one push, not a model plus a data file.
        program.save(str(destination), external_data=False)
        return ["torch.onnx.export(dynamo=True); CPU provider, ORT_ENABLE_ALL"]
