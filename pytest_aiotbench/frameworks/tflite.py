"""TensorFlow Lite (LiteRT): litert-torch converts the PyTorch module with its own weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_aiotbench.frameworks.base import Framework, register_framework


@register_framework
class TFLite(Framework):
    name = "tflite"
    suffix = ".tflite"
    backend = "xnnpack"
    device_requirement = "pip install ai-edge-litert (or tflite-runtime)"
    export_packages = ("torch", "litert-torch")

    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        import litert_torch

        converted = litert_torch.convert(model, (example,))
        converted.export(str(destination))
        return ["converted by litert-torch; input kept in NCHW"]
