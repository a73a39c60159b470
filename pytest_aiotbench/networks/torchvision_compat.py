"""Import torchvision's classifier code even where torchvision's own import fails.

The torchvision wheel paired with the CPU torch in the registry is a CUDA build. Its
``__init__`` registers fake kernels for its C++ operators (``torchvision::nms`` and others),
and against the CPU torch those operators do not exist, so ``import torchvision`` dies with
"operator torchvision::nms does not exist". The classifiers never touch those operators:
they are plain torch.nn code. Where the normal import fails for that reason, we import the
``torchvision`` package without running its ``__init__`` and take ``torchvision.models``
from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from types import ModuleType

#: Why the fallback was needed, for the results' environment section (None: not needed).
fallback_reason: str | None = None


def torchvision_models() -> ModuleType:
    global fallback_reason
    try:
        return importlib.import_module("torchvision.models")
    except RuntimeError as exc:
        if "does not exist" not in str(exc):
            raise
        fallback_reason = (f"import torchvision failed ({exc}); "
                           "loaded its models without its C++ ops")
    _forget_torchvision()
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("torchvision is not installed: pip install torchvision==0.28.0")
    package = types.ModuleType("torchvision")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules["torchvision"] = package
    return importlib.import_module("torchvision.models")


def _forget_torchvision() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
