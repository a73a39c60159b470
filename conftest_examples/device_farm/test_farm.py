"""The farm's matrix: the reference networks x frameworks x every attached device.

Each device's items run on one xdist worker, so the phones time side by side; the local
host times alone. The controller prints one table and one ranking and writes one JSON.
"""

import pytest

from pytest_aiotbench import test_workload  # noqa: F401  (collected here: the matrix)


@pytest.mark.aiot(network="mobilenet_v2", framework="tflite")
def test_mobilenet_v2_on_tflite_within_budget_on_every_device(aiot_measured):
    """A release budget, per device: the same workload item's measurement, not a second one."""
    p90_ms = aiot_measured.stats.p90_s * 1e3
    assert p90_ms < 25, f"{aiot_measured.device}: p90 {p90_ms:.1f} ms is over the 25 ms budget"
