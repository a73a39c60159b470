"""Frameworks: one adapter each, exporting a network into that framework's artifact."""

from pytest_aiotbench.frameworks.base import (
    ExportError,
    Framework,
    ImplementationUnsupported,
    UnknownFrameworkError,
    VariantUnsupported,
    adapter,
    get,
    names,
    register_framework,
)

__all__ = ["ExportError", "Framework", "ImplementationUnsupported", "UnknownFrameworkError",
           "VariantUnsupported", "adapter", "get", "names", "register_framework"]
