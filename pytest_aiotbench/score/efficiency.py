"""Efficiency beside speed: the multiply-accumulates a workload achieves per second, and
what share that is of the device's peak as the runner's matrix-multiply probe measured it
(how close each framework gets to what the silicon can do)."""

from __future__ import annotations

from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.runner.protocol import PeakCompute

#: Floating-point operations per multiply-accumulate: the probe counts FLOPs, cards MACs.
FLOPS_PER_MAC = 2
def gmac_per_s(result: WorkloadResult) -> float | None:
    """Billions of multiply-accumulates per second at t of VIPS (None: not timed, or the
    network's MACs are unknown)."""
    if result.stats is None or not result.macs:
        return None
    return result.macs / result.seconds_per_image / 1e9


def peak_share(result: WorkloadResult, peak: PeakCompute | None) -> float | None:
    """The workload's FLOP/s as a fraction of the device's peak at the same thread count
    (None: no peak measured at that count, or no GMAC/s)."""
    achieved = gmac_per_s(result)
    at_threads = peak.at(result.threads) if peak is not None and peak.measured else None
    if achieved is None or not at_threads:
        return None
    return achieved * FLOPS_PER_MAC / at_threads
