"""The machine-readable results: every sample, the environment, the scores."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.score.efficiency import device_peak, gmac_per_s, peak_share
from pytest_aiotbench.score.vips import DeviceScore, workload_vips

SCHEMA = "pytest-aiotbench/1"


def build(results: list[WorkloadResult], scores: list[DeviceScore],
          device_facts: dict[str, dict], environment: dict[str, Any],
          settings: dict[str, Any]) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    for score in scores:
        facts = device_facts.get(score.device, {})
        peak = device_peak(facts)
        workloads = []
        for result in (r for r in results if r.device == score.device):
            row = result.to_json()
            if result.scored:
                row["vips"], row["vops"] = workload_vips(result)
            row["gmac_per_s"], row["peak_share"] = gmac_per_s(result), peak_share(result, peak)
            workloads.append(row)
        devices[score.device] = {"facts": facts,
                                 "vips": score.vips, "vops": score.vops,
                                 "workloads": workloads}
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "environment": environment,
        "settings": settings,
        "devices": devices,
        "ranking": [s.device for s in scores],
    }


def write(path: Path, document: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=1, default=str))
    os.replace(temporary, path)


def host_environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("pytest-aiotbench", "pytest", "numpy", "torch", "torchvision", "onnx",
                 "onnxscript", "onnxruntime", "ai-edge-litert", "litert-torch", "executorch",
                 "tensorflow", "adbutils"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"host": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "packages": packages}
