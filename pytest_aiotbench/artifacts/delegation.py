"""Delegation facts of an exported artifact: which operators its framework hands to a
delegate (a kernel library such as XNNPACK) and which stay on the framework's own kernels.

They are read from the file on the host when it is exported, never from a profile, so every
artifact carries them: a user sees that a model runs half outside its delegate without
timing anything. Each framework adapter makes its own (``Framework.delegation``); this
module only holds and serialises them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pytest_aiotbench.runner.protocol import NO_DELEGATE

__all__ = ["NO_DELEGATE", "Delegation", "counted"]


@dataclasses.dataclass(frozen=True)
class Delegation:
    """How many operators of each type the delegate took and how many it left to the
    framework's own (reference, portable, aten) kernels."""

    #: The kernel library the framework hands operators to, or NO_DELEGATE where there is none.
    delegate: str
    #: Operator type -> how many of them the delegate runs.
    delegated: dict[str, int]
    #: Operator type -> how many of them run outside the delegate.
    fallback: dict[str, int]
    #: How these counts were found (what was read, with which tool): a reader can judge them.
    source: str

    @property
    def delegated_ops(self) -> int:
        return sum(self.delegated.values())

    @property
    def fallback_ops(self) -> int:
        return sum(self.fallback.values())

    @property
    def total_ops(self) -> int:
        return self.delegated_ops + self.fallback_ops

    @property
    def fully_delegated(self) -> bool:
        """Whether every operator runs in the delegate (never so without one)."""
        return self.delegate != NO_DELEGATE and not self.fallback

    def summary(self) -> str:
        """One line for a note or a table cell: '112 of 115 ops in XNNPACK; outside: ...'."""
        if self.delegate == NO_DELEGATE:
            return f"no delegate: all {self.total_ops} ops on the framework's own kernels"
        line = f"{self.delegated_ops} of {self.total_ops} ops in {self.delegate}"
        if self.fallback:
            line += "; outside: " + ", ".join(f"{op} x{n}" for op, n in self.fallback.items())
        return line

    def to_json(self) -> dict[str, Any]:
        return {"delegate": self.delegate, "delegated": dict(self.delegated),
                "fallback": dict(self.fallback), "delegated_ops": self.delegated_ops,
                "fallback_ops": self.fallback_ops, "source": self.source}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Delegation:
        """The form ``to_json`` writes (its totals are derived, so they are not read)."""
        return cls(str(raw["delegate"]), _counts(raw["delegated"]), _counts(raw["fallback"]),
                   str(raw["source"]))


def counted(op_types: Iterable[str]) -> dict[str, int]:
    """Operator type -> count, the most frequent first (ties by name): a stable order for
    files and tables."""
    return dict(sorted(Counter(op_types).items(), key=lambda item: (-item[1], item[0])))


def _counts(raw: dict[str, Any]) -> dict[str, int]:
    return {str(op): int(n) for op, n in raw.items()}
