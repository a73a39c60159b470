"""The benchmark session: made in pytest_configure, fed by every workload item, finished in
pytest_sessionfinish. It knows every stage of the flow and is the only place that joins
them: network -> artifact -> device -> runner -> measurement -> score -> report."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_aiotbench import frameworks, networks
from pytest_aiotbench.artifacts import (
    ArtifactCache,
    BuildError,
    PreparedNetwork,
    export_artifact,
    prepare_network,
)
from pytest_aiotbench.devices import Device, DeviceError, FrameworkMissing
from pytest_aiotbench.frameworks import ExportError
from pytest_aiotbench.measure import WorkloadResult, compare, summarize
from pytest_aiotbench.measure.result import FAILED, INVALID, PASSED, SKIPPED
from pytest_aiotbench.measure.thermal import throttle_findings
from pytest_aiotbench.report import json_file, table
from pytest_aiotbench.score import score_all
from pytest_aiotbench.settings import Settings

AGREEMENT_SOURCE = "top-1 agreement with fp32 reference"


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    network: str
    framework: str
    device: str

    @property
    def id(self) -> str:
        return f"{self.network}-{self.framework}-{self.device}"


class BenchSession:
    def __init__(self, settings: Settings, devices: list[Device],
                 progress: Callable[[str], None] = print, unavailable: list[str] | None = None):
        self.settings = settings
        self.devices = {device.alias: device for device in devices}
        #: Devices adb reported but that cannot run anything (offline, unauthorized).
        self.unavailable = list(unavailable or [])
        self.cache = ArtifactCache(settings.cache_dir)
        self.progress = progress
        self.results: list[WorkloadResult] = []
        self.device_facts: dict[str, dict[str, Any]] = {}
        self._prepared: dict[str, PreparedNetwork] = {}
        self._build_errors: dict[str, BuildError] = {}
        self._workdir = Path(tempfile.mkdtemp(prefix="aiotbench-"))
        self.started = time.perf_counter()
        self.prepare_s = 0.0
        self.artifacts_built = 0
        self.artifacts_reused = 0

    # ------------------------------------------------------------------ the workload
    def run(self, spec: WorkloadSpec, nodeid: str = "") -> WorkloadResult:
        """Prepare, deploy, time and check one workload; the result is always recorded."""
        framework = frameworks.get(spec.framework)
        result = WorkloadResult(device=spec.device, network=spec.network,
                                framework=spec.framework, backend=framework.backend,
                                nodeid=nodeid)
        try:
            self._run(spec, framework, result)
        except FrameworkMissing as exc:
            result.status, result.error = SKIPPED, str(exc)
        except (BuildError, ExportError, DeviceError) as exc:
            result.status, result.error = FAILED, str(exc)
        except Exception as exc:  # confined to this item; the session goes on
            result.status, result.error = FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            self.record(result)
        return result

    def _run(self, spec: WorkloadSpec, framework: frameworks.Framework,
             result: WorkloadResult) -> None:
        settings = self.settings
        started = time.perf_counter()
        try:
            card = networks.get(spec.network)
            network = self.network(card)
            result.macs = network.macs
            result.weights, result.weights_sha256 = network.weights, network.weights_sha256
            artifact = export_artifact(network, framework, self.cache, self._announce_export)
        finally:
            result.prepare_s = time.perf_counter() - started
            self.prepare_s += result.prepare_s
        if artifact.built:
            self.artifacts_built += 1
            self.progress(f"aiotbench: exported {artifact.path.name} in {artifact.build_s:.1f} s")
        else:
            self.artifacts_reused += 1
        result.artifact = artifact.to_json()
        result.notes.extend(artifact.notes)

        device = self.devices[spec.device]
        if spec.device not in self.device_facts:
            self.device_facts[spec.device] = device.facts()
        cooldown = (settings.cooldown_s if settings.cooldown_s is not None
                    else device.default_cooldown_s)
        if cooldown:
            time.sleep(cooldown)
            result.cooldown_s = cooldown
        measured = time.perf_counter()
        request = {
            "framework": framework.name,
            "artifact": device.stage(artifact.path, artifact.sha256),
            "probe_inputs": device.stage(network.probe_path),
            "threads": settings.threads or device.cpu_count(),
            **settings.runner_request(),
        }
        raw = device.run(request, settings.timeout_s)
        result.measure_s = time.perf_counter() - measured

        result.samples_s = raw["samples_s"]
        result.warmup_samples_s = raw["warmup_samples_s"]
        result.stats = summarize(result.samples_s, settings.confidence)
        result.load_s, result.first_inference_s = raw["load_s"], raw["first_inference_s"]
        result.stop_reason, result.threads = raw["stop_reason"], raw["threads"]
        result.framework_version = raw["framework_version"]
        result.notes.extend(raw.get("notes", []))
        result.thermal = raw.get("thermal")
        if result.thermal:
            result.throttled = throttle_findings(
                result.thermal["before"], result.thermal["after"],
                max_freq_drop=settings.throttle_freq_drop,
                max_temp_rise_c=settings.throttle_temp_rise_c)
        result.validity = compare(raw["probe_outputs"], network.reference_outputs, settings.rtol)
        result.accuracy = result.validity.top1_agreement
        result.accuracy_source = AGREEMENT_SOURCE
        if result.validity.passed:
            result.status = PASSED
        else:
            result.status = INVALID
            result.error = (f"{spec.id}: outputs diverge from the fp32 reference: "
                            f"{result.validity.describe()}")

    def network(self, card: networks.NetworkCard) -> PreparedNetwork:
        if card.name in self._build_errors:
            raise self._build_errors[card.name]
        if card.name not in self._prepared:
            # Items come network by network: keep one model in memory, not six.
            self._prepared.clear()
            try:
                self._prepared[card.name] = prepare_network(
                    card, pretrained=self.settings.weights == "pretrained",
                    seed=self.settings.seed, probe_count=self.settings.probes,
                    workdir=self._workdir)
            except BuildError as exc:
                self._build_errors[card.name] = exc
                raise
        return self._prepared[card.name]

    def _announce_export(self, label: str) -> None:
        self.progress(f"aiotbench: exporting {label} (not in the cache {self.cache.root}) ...")

    # --------------------------------------------------------------------- results
    def record(self, result: WorkloadResult) -> None:
        self.results.append(result)
        if self.settings.json_path:
            # Written after every workload: an interrupted session keeps what it measured.
            self.write_json()

    def document(self) -> dict[str, Any]:
        from pytest_aiotbench.networks.torchvision_compat import fallback_reason

        environment = json_file.host_environment()
        environment["torchvision_import"] = fallback_reason or "normal"
        environment["timing"] = {
            "session_s": time.perf_counter() - self.started, "prepare_s": self.prepare_s,
            "artifacts_built": self.artifacts_built, "artifacts_reused": self.artifacts_reused}
        facts = {alias: dict(values) for alias, values in self.device_facts.items()}
        for alias, device in self.devices.items():
            deploy = getattr(device, "deploy_stats", None)
            if deploy is not None and alias in facts:
                facts[alias]["deploy"] = dict(deploy)
        document = json_file.build(self.results, score_all(self.results), facts,
                                   environment, self.settings.to_json())
        document["unavailable_devices"] = self.unavailable
        return document

    def write_json(self) -> None:
        assert self.settings.json_path is not None
        json_file.write(self.settings.json_path, self.document())

    def summary_lines(self) -> list[str]:
        if not self.results:
            return []
        lines = table.render(score_all(self.results), self.device_facts)
        for alias, device in self.devices.items():
            deploy = getattr(device, "deploy_stats", None)
            if deploy is not None:
                lines.append(f"deploy to {alias}: {deploy['pushed']} files pushed "
                             f"({deploy['bytes_pushed'] / 1e6:.1f} MB), "
                             f"{deploy['skipped_same_hash']} already there with the same hash")
        if self.unavailable:
            lines.append("devices seen but not usable: " + ", ".join(self.unavailable))
        elapsed = time.perf_counter() - self.started
        lines.append(
            f"artifacts: {self.artifacts_built} exported, {self.artifacts_reused} from the cache; "
            f"preparing took {self.prepare_s:.1f} s of the session's {elapsed:.1f} s "
            f"({self.prepare_s / elapsed:.1%})")
        if self.settings.json_path:
            lines.append(f"results written to {self.settings.json_path}")
        return lines

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        import shutil

        shutil.rmtree(self._workdir, ignore_errors=True)
