"""Make ``import torchvision`` work where the torchvision wheel's C++ operators cannot load.

The torchvision wheel paired with the CPU torch in the registry is a CUDA build. Its
``__init__`` registers fake kernels for its C++ operators (``torchvision::nms`` and others),
and against the CPU torch those operators do not exist, so ``import torchvision`` dies with
"operator torchvision::nms does not exist". Its models, transforms and most of its ops are
plain torch code that never touch those operators.

:func:`install` (run when ``pytest_aiotbench`` is imported, before any test module) puts a
finder first on ``sys.meta_path`` that changes one thing: where torchvision's ``__init__``
fails for that reason, the package is kept without it, so that ``torchvision.models``,
``torchvision.models.detection`` and the rest import from its files as usual. Only the C++
operators stay missing (``torchvision.ops.nms`` raises where it is called). Where the normal
import works, nothing changes. The finder looks up nothing and imports nothing itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: Why the fallback was needed, for the results' environment section (None: not needed).
fallback_reason: str | None = None

#: What torchvision's __init__ raises against a torch that lacks its operators.
MISSING_OPERATOR = "does not exist"


class _KeepWithoutInit(importlib.abc.Loader):
    """torchvision's own loader, except that a failure of its operators' registration
    leaves the package importable without its ``__init__``."""

    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        global fallback_reason
        try:
            self.loader.exec_module(module)
        except RuntimeError as exc:
            if MISSING_OPERATOR not in str(exc):
                raise
            fallback_reason = (f"import torchvision failed ({exc}); loaded without its "
                               "__init__ and its C++ ops")
            # What the failed __init__ imported half-way is forgotten; the package keeps its
            # path, so its submodules import from its files.
            for name in [n for n in sys.modules if n.startswith("torchvision.")]:
                del sys.modules[name]
            for name in [n for n in vars(module) if not n.startswith("__")]:
                delattr(module, name)


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _KeepWithoutInit(spec.loader)
        return spec


def install() -> None:
    """Put the finder first on sys.meta_path (once)."""
    if not any(isinstance(finder, _TorchvisionFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFinder())


def torchvision_models() -> ModuleType:
    """``torchvision.models``, with the fallback above where it is needed."""
    install()
    try:
        return importlib.import_module("torchvision.models")
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":
            raise
        raise ImportError("torchvision is not installed: pip install torchvision==0.28.0") \
            from None
