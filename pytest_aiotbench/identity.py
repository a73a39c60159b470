"""A workload's identity: one key, one id format, and the parser of that format.

A workload is one network, in one implementation, exported for one framework in one
variant, run on one framework backend, on one device. Items, results, the release gate,
benchmark records, the xdist farm and the HTML page all name it by :class:`WorkloadKey`,
and its id is the pytest item's id::

    resnet50-tflite-local               torch and fp32 are left out, as the defaults
    resnet50-keras-onnxruntime-int8-Pixel_8
    mobilenet_v2-tflite+gpu-board       a backend other than the framework's own

The frameworks are the registry's (``frameworks.names()``): that is their only list.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pytest_aiotbench.frameworks import base as frameworks

#: The implementation a network is in when nothing says otherwise (the list of
#: implementations is ``networks.implementations``).
DEFAULT_IMPLEMENTATION = "torch"
#: The variants a framework may make of a network; fp32 is the network as trained.
VARIANTS = ("fp32", "fp16", "dynamic-int8", "int8")
DEFAULT_VARIANT = VARIANTS[0]


class WorkloadIdError(ValueError):
    """A text that is not a workload id."""


def network_label(name: str, implementation: str = DEFAULT_IMPLEMENTATION) -> str:
    """A network in an implementation as ids name it: ``resnet50``, ``resnet50-keras``."""
    return name if implementation == DEFAULT_IMPLEMENTATION else f"{name}-{implementation}"


def framework_label(framework: str, variant: str = DEFAULT_VARIANT, backend: str = "") -> str:
    """A framework in a variant on a backend as ids name it: ``tflite``, ``tflite-int8``;
    the backend only where it is not the framework's own (``tflite+gpu``)."""
    label = framework if variant == DEFAULT_VARIANT else f"{framework}-{variant}"
    if backend and backend != default_backend(framework):
        label += f"+{backend}"
    return label


def default_backend(framework: str) -> str:
    """The backend a framework's workloads run on unless a run says otherwise."""
    try:
        return frameworks.get(framework).backend
    except frameworks.UnknownFrameworkError:
        return ""


@dataclasses.dataclass(frozen=True, order=True)
class WorkloadKey:
    """What makes two runs' workloads the same workload (the device by its alias, stable
    across sessions)."""

    device: str
    network: str
    framework: str
    variant: str = DEFAULT_VARIANT
    implementation: str = DEFAULT_IMPLEMENTATION
    #: Empty: the framework's own backend (filled in on construction when it is known).
    backend: str = ""

    def __post_init__(self) -> None:
        if not self.backend:
            object.__setattr__(self, "backend", default_backend(self.framework))

    @property
    def network_label(self) -> str:
        return network_label(self.network, self.implementation)

    @property
    def framework_label(self) -> str:
        return framework_label(self.framework, self.variant, self.backend)

    @property
    def label(self) -> str:
        """The workload without its device, as tables name a row: ``resnet50-tflite-int8``."""
        return f"{self.network_label}-{self.framework_label}"

    @property
    def id(self) -> str:
        """The pytest item's id: the label, then the device."""
        return f"{self.label}-{self.device}"

    @classmethod
    def parse(cls, text: str) -> WorkloadKey:
        """The key of an id (or of a node id ending in ``[id]``); WorkloadIdError if it is
        not one. The framework is found by name: network and device names may hold ``-``."""
        if text.endswith("]") and "[" in text:
            text = text[text.rindex("[") + 1:-1]
        found = _id_pattern().match(text)
        if found is None:
            raise WorkloadIdError(f"{text!r} is not a workload id (network[-implementation]-"
                                  f"framework[-variant][+backend]-device)")
        parts = found.groupdict()
        return cls(device=parts["device"], network=parts["network"],
                   framework=parts["framework"], variant=parts["variant"] or DEFAULT_VARIANT,
                   implementation=parts["implementation"] or DEFAULT_IMPLEMENTATION,
                   backend=parts["backend"] or "")

    @classmethod
    def from_nodeid(cls, nodeid: str) -> WorkloadKey | None:
        """The workload of a node id; None when it is not a workload item's."""
        try:
            return cls.parse(nodeid) if nodeid.endswith("]") else None
        except WorkloadIdError:
            return None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkloadKey:
        """From a key's fields, or a result row's (which holds them among others); rows
        written before implementations and backends were recorded get the defaults."""
        return cls(device=data["device"], network=data["network"], framework=data["framework"],
                   variant=data.get("variant") or DEFAULT_VARIANT,
                   implementation=data.get("implementation") or DEFAULT_IMPLEMENTATION,
                   backend=data.get("backend") or "")


def _id_pattern() -> re.Pattern[str]:
    from pytest_aiotbench.networks.implementations import IMPLEMENTATIONS

    def alternatives(names: Any) -> str:
        return "|".join(map(re.escape, sorted(names, key=len, reverse=True)))

    implementations = [name for name in IMPLEMENTATIONS if name != DEFAULT_IMPLEMENTATION]
    variants = [name for name in VARIANTS if name != DEFAULT_VARIANT]
    return re.compile(
        rf"^(?P<network>.+?)(?:-(?P<implementation>{alternatives(implementations)}))?"
        rf"-(?P<framework>{alternatives(frameworks.names())})"
        rf"(?:-(?P<variant>{alternatives(variants)}))?(?:\+(?P<backend>[\w.]+))?"
        rf"-(?P<device>.+)$")
