"""Tasks: what a network is for, and how its quality is measured (the task registry)."""

from pytest_aiotbench.tasks.base import (
    Task,
    UnknownTaskError,
    by_measure,
    get,
    names,
    register_task,
)

__all__ = ["Task", "UnknownTaskError", "by_measure", "get", "names", "register_task"]
