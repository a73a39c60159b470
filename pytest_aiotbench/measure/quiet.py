"""Competing load before timing: how busy the cores a runner is timed on are now, and the wait
for them to fall quiet (``--aiot-quiet=wait``), as the cooldown waits for heat.

The runners measure what other processes took during the timing itself (the protocol's
``competing_load``, which flags a row busy); this module looks before it, over short windows
in which no runner runs.
"""

from __future__ import annotations

import dataclasses
import os
import time

from pytest_aiotbench.devices import Device, LocalDevice

#: One look at the cores: /proc/stat read twice this far apart (at 100 clock ticks a second,
#: 20 ticks a core: a share to 5% on one core, finer on more; short, as the session's header
#: takes one look in every session).
QUIET_WINDOW_S = 0.2


class BusyCoresWarning(UserWarning):
    """A row was timed while other processes took more than --aiot-quiet-limit of its cores
    (--aiot-quiet=warn: pytest's warnings summary lists each, the table marks the row)."""


@dataclasses.dataclass(frozen=True)
class QuietWait:
    """What waiting for quiet found: how long it took, the last window's share of the cores
    other processes took (None: not looked, or the device cannot tell), and whether the
    share fell to the limit."""

    waited_s: float = 0.0
    others_share: float | None = None
    reached: bool = True


def wait_for_quiet(device: Device, limit: float, bound_s: float) -> QuietWait:
    """Look at the device's cores window after window until others take no more than
    ``limit`` of them, or ``bound_s`` has passed (at least one window is looked at)."""
    started = time.perf_counter()
    while True:
        load = device.load_window(QUIET_WINDOW_S)
        share = load.others_share if load is not None else None
        waited = time.perf_counter() - started
        if share is None or share <= limit:
            return QuietWait(waited, share, True)
        if waited >= bound_s:
            return QuietWait(waited, share, False)


@dataclasses.dataclass(frozen=True)
class HostLoad:
    """The host's load when the session starts: the kernel's load averages (runnable tasks
    over 1, 5 and 15 minutes) and the share of this process's cores other processes took
    over one window."""

    load_average: tuple[float, float, float]
    cores: int
    others_share: float | None

    @classmethod
    def now(cls) -> HostLoad:
        load = LocalDevice().load_window(QUIET_WINDOW_S)
        return cls(os.getloadavg(), len(os.sched_getaffinity(0)),
                   load.others_share if load is not None else None)

    def describe(self, limit: float) -> str:
        averages = " ".join(f"{value:.2f}" for value in self.load_average)
        line = f"host load before timing: load average {averages} on {self.cores} core(s)"
        if self.others_share is None:
            return line + "; the share other processes take cannot be read here (no /proc/stat)"
        said = (f"above --aiot-quiet-limit {limit:.0%}: rows timed now will likely be "
                "flagged busy" if self.others_share > limit else f"limit {limit:.0%}")
        return (line + f"; other processes took {self.others_share:.0%} of them over "
                f"{QUIET_WINDOW_S:g} s ({said})")

    def to_json(self) -> dict[str, object]:
        return {"load_average": list(self.load_average), "cores": self.cores,
                "others_share": self.others_share, "window_s": QUIET_WINDOW_S}
