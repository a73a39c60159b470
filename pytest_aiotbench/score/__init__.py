"""Score: VIPS and VOPS per device, and the device ranking."""

from pytest_aiotbench.score.vips import DeviceScore, WorkloadScore, score_all, score_device

__all__ = ["DeviceScore", "WorkloadScore", "score_all", "score_device"]
