"""Exports ahead of the items that need them, several at once (``--aiot-export-workers``).

At the end of collection the session knows every (network, artifact) its items need; the pool
starts them all, each in a thread of its own that drives an export worker process of its own
(``export_worker.shared_worker`` is per thread). As many run at once as the cores allow and
the memory: an export starts only where the host's available memory holds the largest peak an
export of this session has needed so far (or :data:`FIRST_PEAK_GUESS` before any is
measured), unless nothing else runs. The artifact cache's file lock keeps two sessions, or an
item and the pool, from exporting one file twice.

An item's artifact stage takes the pool's outcome for its pair (waiting while it runs): a
failed export fails, and a skipped one skips, only the items that need it, as without the
pool. The local host's timing waits while any export runs (:meth:`ExportPool.wait_idle`):
the figures the table reports never share the host's cores with a converter.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from pytest_aiotbench.runner.aiot_runner import proc_kib_field

#: What one export is assumed to need before any has been measured: the export worker with
#: torch, TensorFlow and a converter loaded (1.0-2.4 GB seen here for the reference six).
FIRST_PEAK_GUESS = 2.5e9


def auto_workers(wanted: int | None) -> int:
    """``--aiot-export-workers``: the number given, or (None, 0) this process's cores."""
    if wanted:
        return wanted
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_memory() -> float | None:
    """The host's MemAvailable in bytes (None where /proc/meminfo cannot tell)."""
    available = proc_kib_field("/proc/meminfo", "MemAvailable")
    return None if available is None else float(available)


class ExportPool:
    """Runs ``export(key)`` for every key given to :meth:`start`, ``workers`` at a time;
    ``peak_of(outcome)`` is an export's measured peak memory (None where not measured)."""

    def __init__(self, workers: int, export: Callable[[Any], Any],
                 peak_of: Callable[[Any], float | None],
                 memory: Callable[[], float | None] = available_memory):
        self._export = export
        self._peak_of = peak_of
        self._memory = memory
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="aiotbench-export")
        self._futures: dict[Hashable, concurrent.futures.Future] = {}
        self._changed = threading.Condition()
        self._running = 0
        self._largest_peak: float | None = None

    @property
    def running(self) -> int:
        """Exports running now."""
        return self._running

    def start(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            if key not in self._futures:
                self._futures[key] = self._executor.submit(self._run, key)

    def outcome(self, key: Hashable) -> concurrent.futures.Future | None:
        """The pool's future for ``key`` (None: the pool was not asked for it)."""
        return self._futures.get(key)

    def wait_idle(self) -> None:
        """Until no export runs or waits to run (an export's failure or skip is its items'
        to say: not raised here)."""
        concurrent.futures.wait(list(self._futures.values()))

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._executor.shutdown(wait=True)

    def _run(self, key: Hashable) -> Any:
        with self._changed:
            while self._running and not self._fits():
                self._changed.wait()
            self._running += 1
        try:
            outcome = self._export(key)
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()
        peak = self._peak_of(outcome)
        if peak is not None:
            with self._changed:
                self._largest_peak = max(peak, self._largest_peak or 0.0)
        return outcome

    def _fits(self) -> bool:
        """Whether one more export fits in the memory available now."""
        available = self._memory()
        if available is None:
            return True
        return available >= (self._largest_peak or FIRST_PEAK_GUESS)
