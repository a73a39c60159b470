"""Why a row's timing may not be trusted: one list of typed flags per row, which the table,
the JSON, the HTML report and the release gate all read.

    throttled  the device slowed down or heated up while it was timed (thermal.py)
    busy       other processes took more than the limit of the cores the row was timed on
    unstable   the timing stopped at its time cap with the median's interval still wider
               than the target

A flagged row is still scored: the flags say how far to trust its figures, and the ranking
says how much of each device's VIPS comes from flagged rows.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import Any

from pytest_aiotbench.measure.stats import LatencyStats
from pytest_aiotbench.runner.protocol import CompetingLoad


class FlagKind(enum.Enum):
    THROTTLED = "throttled"
    BUSY = "busy"
    UNSTABLE = "unstable"

    @property
    def meaning(self) -> str:
        """What the flag says of a row, as the table's notes and the HTML report explain it."""
        return _MEANINGS[self]


_MEANINGS = {
    FlagKind.THROTTLED: "the device slowed down or heated up while the row was timed",
    FlagKind.BUSY: "other processes took more than the limit (--aiot-quiet-limit) of the "
                   "cores the row was timed on: its figures may be far slower than the "
                   "device's, whatever its interval says",
    FlagKind.UNSTABLE: "the timing stopped at its time cap (--aiot-max-time) with the "
                       "median's interval wider than the target (--aiot-rel-ci)",
}


@dataclasses.dataclass(frozen=True)
class Flag:
    kind: FlagKind
    #: The figures that raised it, e.g. "others took 47% of cores 0,1 (limit 25%)".
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "reason": self.reason}

    @classmethod
    def read(cls, value: Any) -> Flag | None:
        """A flag as a results file holds it; None for a kind this version does not know
        (a newer writer's), so that one odd entry never hides a run."""
        if isinstance(value, Flag):
            return value
        if not isinstance(value, dict):
            return None
        try:
            return cls(FlagKind(value.get("kind")), str(value.get("reason") or ""))
        except ValueError:
            return None


def read_flags(values: Iterable[Any] | None) -> list[Flag]:
    return [flag for flag in map(Flag.read, values or ()) if flag is not None]


def kinds(flags: Iterable[Flag]) -> list[str]:
    """The kinds of ``flags``, each once, in FlagKind's order: "busy", "unstable"."""
    present = {flag.kind for flag in flags}
    return [kind.value for kind in FlagKind if kind in present]


def described(label: str, flags: Iterable[Flag]) -> list[str]:
    """One line per kind a row is flagged with, and its figures: "busy: <label>: others
    took 52% of cores 0,1 ..."."""
    flags = list(flags)
    return [f"{kind}: {label}: " + "; ".join(flag.reason for flag in flags
                                             if flag.kind.value == kind)
            for kind in kinds(flags)]


def present(flags: Iterable[Flag]) -> list[FlagKind]:
    """The kinds among ``flags``, in FlagKind's order: what a report explains."""
    found = set(kinds(flags))
    return [kind for kind in FlagKind if kind.value in found]


def throttled(findings: Iterable[str]) -> list[Flag]:
    return [Flag(FlagKind.THROTTLED, finding) for finding in findings]


def busy(load: CompetingLoad | None, limit: float) -> Flag | None:
    """The busy flag where others took more than ``limit`` of the timed cores."""
    share = load.others_share if load is not None else None
    if share is None or share <= limit:
        return None
    return Flag(FlagKind.BUSY, f"others took {share:.0%} of cores {_cores(load.cores)} "
                               f"while it was timed (limit {limit:.0%})")


def unstable(stats: LatencyStats | None, stop_reason: str | None, time_cap_s: float,
             target_rel_ci: float) -> Flag | None:
    """The unstable flag where the time cap, not the interval, ended the timing."""
    if stats is None or stop_reason != "time_cap":
        return None
    width = stats.median_ci_rel_half_width
    if width <= target_rel_ci:
        return None
    return Flag(FlagKind.UNSTABLE, f"stopped at the time cap ({time_cap_s:g} s, {stats.n} "
                                   f"samples) with the median known to ±{_percent(width)}, "
                                   f"target ±{_percent(target_rel_ci)}")


def _cores(cores: tuple[int, ...]) -> str:
    return ",".join(map(str, cores)) if cores else "(all)"


def _percent(fraction: float) -> str:
    """3 significant digits: ±0.01% and ±136% alike."""
    return f"{fraction * 100:.3g}%"
