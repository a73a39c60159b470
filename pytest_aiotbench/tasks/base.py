"""The task registry: what a network is for, and the quality measure that scores it.

A task says how a workload's quality is measured where no labelled data is given (its
agreement with the fp32 model on the probe inputs, output by output as the task reads
them) and what it reads from labelled data. VIPS and VOPS take that quality as their
accuracy. A task registers itself, like a framework: the registry is the only list, and a
new task is one module.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Sequence

import numpy as np

#: The kinds of labels (``Task.labels``).
CLASSES, MAPS = "classes", "maps"


class UnknownTaskError(LookupError):
    pass


class Task(abc.ABC):
    #: As the card and the results name it.
    name: str = ""
    #: The quality measure against the fp32 reference, in words (table, report, JSON).
    agreement_measure: str = ""
    #: The same, as the table's "source" column names it.
    short: str = ""
    #: What labels score it where labelled data is given: CLASSES (one class per item:
    #: top-1 and top-5), MAPS (a class per pixel: mIoU), or None (its agreement alone).
    labels: str | None = None
    #: For MAPS: the axis of the first output that holds the class scores.
    class_map_axis: int | None = None

    @abc.abstractmethod
    def agreement(self, got: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                  shapes: Sequence[tuple[int, ...]], within: np.ndarray) -> float:
        """The fraction of the fp32 answers the deployed artifact keeps, in [0, 1].

        ``got`` and ``reference`` hold one ``(probes, size)`` array per output, in the
        card's order; ``shapes`` each output's shape (batch 1); ``within`` per probe,
        whether every output is within the tolerance."""


_TASKS: dict[str, Task] = {}

#: The built-in tasks' modules.
BUILTIN = ("classification", "segmentation", "generic")


def register_task(cls: type[Task]) -> type[Task]:
    _TASKS[cls.name] = cls()
    return cls


def get(name: str) -> Task:
    _load_builtin()
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(names())}") \
            from None


def names() -> list[str]:
    _load_builtin()
    return list(_TASKS)


def by_measure() -> dict[str, Task]:
    """Every task by its agreement measure (what a result's accuracy source says)."""
    _load_builtin()
    return {task.agreement_measure: task for task in _TASKS.values()}


def _load_builtin() -> None:
    for module in BUILTIN:
        importlib.import_module(f"pytest_aiotbench.tasks.{module}")
