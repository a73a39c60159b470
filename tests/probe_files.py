"""Requests' probe files for tests that write their own: one float32 input."""

from __future__ import annotations

from pathlib import Path

from pytest_aiotbench.runner.protocol import TensorFile


def float_input(path: str | Path, name: str = "input") -> tuple[TensorFile, ...]:
    """The probe_inputs of a model with one float32 input whose probes are at ``path``."""
    return (TensorFile(name, "float32", str(path)),)
