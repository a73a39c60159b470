"""Tasks: what a network is for, and how its quality is measured (the task registry)."""

from pytest_aiotbench.tasks.base import (
    Task,
    UnknownTaskError,
    _load_builtin,
    by_measure,
    get,
    names,
    register_task,
)

# The built-in tasks register in their one order, whichever module is imported first.
_load_builtin()

__all__ = ["Task", "UnknownTaskError", "by_measure", "get", "names", "register_task"]
