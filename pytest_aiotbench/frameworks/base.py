"""The framework adapter: turn a network into an artifact on the host.

An adapter knows how to export and which runner backend loads the file; it knows nothing of
devices. Adapters register themselves, like networks; the registry is the only list. A
framework has one adapter per implementation it can take (a network's torch or Keras model):
the one for Keras subclasses the torch one, so what the device runs is said once.
"""

from __future__ import annotations

import abc
import importlib
import importlib.metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where it is made, in each adapter's ``delegation``: importing
    # pytest_aiotbench.artifacts runs that package, whose export worker imports this module.
    from pytest_aiotbench.artifacts.delegation import Delegation

#: framework name -> implementation -> adapter, in registration order.
_FRAMEWORKS: dict[str, dict[str, Framework]] = {}


class UnknownFrameworkError(LookupError):
    pass


class ExportError(RuntimeError):
    pass


class VariantUnsupported(ExportError):
    """The framework cannot make this variant here: the item is skipped with the reason."""


class ImplementationUnsupported(VariantUnsupported):
    """The framework cannot take a model of this implementation (here): skipped, saying why."""


class Framework(abc.ABC):
    #: Name used in options, test ids and results; also the runner backend's name.
    name: str = ""
    #: The kind of model ``export`` takes (``networks.implementations``).
    implementation: str = "torch"
    #: File suffix of the artifact.
    suffix: str = ""
    #: Where the inference runs, as the runner sets it up.
    backend: str = "cpu"
    #: What a device must have installed to run this framework (for skip messages).
    device_requirement: str = ""
    #: Python distributions that give a device's Python this framework (any one will do).
    device_packages: tuple[str, ...] = ()
    #: Distributions whose versions change the exported bytes (part of the cache key).
    export_packages: tuple[str, ...] = ("torch",)
    #: Bump when the export code changes what it writes.
    export_revision: int = 1

    #: Variants beyond fp32 this adapter can make (see ``make_variant``).
    variants: tuple[str, ...] = ()

    @abc.abstractmethod
    def export(self, model: Any, example: Any, destination: Path) -> list[str]:
        """Write the fp32 artifact for ``model`` at ``destination``; return notes."""

    def check_variant(self, variant: str) -> None:
        if variant != "fp32" and variant not in self.variants:
            raise VariantUnsupported(f"{self.name} has no {variant} variant "
                                     f"(it offers: {', '.join(('fp32', *self.variants))})")

    def make_variant(self, variant: str, fp32_artifact: Path, model: Any, example: Any,
                     calibration: list[Any], destination: Path) -> list[str]:
        """Write a quantized or reduced-precision variant; ``calibration`` holds a few
        preprocessed inputs (numpy, batch 1) for the variants that need them."""
        raise NotImplementedError(variant)

    def delegation(self, artifact: Path) -> Delegation:
        """Which operators of ``artifact`` (fp32 or any variant) this framework hands to its
        delegate and which it runs on its own kernels, read from the file with the framework
        installed on the host. Export calls it once per artifact (the export worker); a
        failure is reported as a missing analysis, never as a failed export."""
        raise NotImplementedError(f"the {self.name} adapter has no delegation analysis")

    def tool_versions(self) -> dict[str, str]:
        return {package: _version(package) for package in self.export_packages}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def register_framework(cls: type[Framework]) -> type[Framework]:
    _FRAMEWORKS.setdefault(cls.name, {})[cls.implementation] = cls()
    return cls


def get(name: str) -> Framework:
    """The framework's first adapter: what it runs on devices is the same for all of them."""
    return next(iter(_adapters(name).values()))


def adapter(name: str, implementation: str) -> Framework:
    """The framework's adapter for models of ``implementation``; ImplementationUnsupported
    (a skip) where it has none."""
    adapters = _adapters(name)
    try:
        return adapters[implementation]
    except KeyError:
        raise ImplementationUnsupported(
            f"{name} takes {' and '.join(adapters)} models only: it has no converter for a "
            f"{implementation} model") from None


def _adapters(name: str) -> dict[str, Framework]:
    _load_builtin()
    try:
        return _FRAMEWORKS[name]
    except KeyError:
        raise UnknownFrameworkError(
            f"unknown framework {name!r}; known frameworks: {', '.join(names())}") from None


def names() -> list[str]:
    _load_builtin()
    return list(_FRAMEWORKS)


#: The built-in adapters, in the order of the original suite's columns.
BUILTIN = ("tflite", "onnx_runtime", "pytorch_mobile", "executorch_xnnpack")


def _load_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(f"pytest_aiotbench.frameworks.{module}")
