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

import numpy as np

from pytest_aiotbench import frameworks, networks
from pytest_aiotbench.artifacts import (
    ArtifactCache,
    BuildError,
    PreparedNetwork,
    export_artifact,
    prepare_network,
)
from pytest_aiotbench.devices import Device, DeviceError, FrameworkMissing
from pytest_aiotbench.frameworks import ExportError, VariantUnsupported
from pytest_aiotbench.gate import GateSummary, ReleaseGate, WorkloadKey
from pytest_aiotbench.images import Dataset
from pytest_aiotbench.measure import WorkloadResult, compare, summarize
from pytest_aiotbench.measure.result import FAILED, INVALID, PASSED, SKIPPED
from pytest_aiotbench.measure.thermal import throttle_findings
from pytest_aiotbench.report import gate_table, json_file, table
from pytest_aiotbench.report.benchmark_records import BenchmarkRecords
from pytest_aiotbench.runner.aiot_runner import preprocess
from pytest_aiotbench.runner.native.build import NativeBuilder, NativeBuildError
from pytest_aiotbench.runner.program import RunnerChooser, RunnerProgram, RunnerUnavailable
from pytest_aiotbench.runner.protocol import LabelledPass, RunRequest
from pytest_aiotbench.score import score_all
from pytest_aiotbench.settings import Settings

AGREEMENT_SOURCE = "top-1 agreement with fp32 reference"
#: Largest relative error against fp32 for the reduced-precision variants: they are judged
#: by their accuracy, this only catches an artifact that computes something else entirely.
VARIANT_RTOL = {"fp16": 1e-2, "dynamic-int8": 0.5, "int8": 0.5}


def tolerance_for(variant: str, fp32_rtol: float) -> float:
    return max(fp32_rtol, VARIANT_RTOL.get(variant, fp32_rtol))


def preprocessing_spec(card: networks.NetworkCard) -> dict[str, Any]:
    return dataclasses.asdict(card.preprocessing)


LABELLED_SOURCE = "labelled images"
CALIBRATION_IMAGES = 16


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    network: str
    framework: str
    device: str
    variant: str = "fp32"

    @property
    def key(self) -> WorkloadKey:
        return WorkloadKey(self.device, self.network, self.framework, self.variant)

    @property
    def id(self) -> str:
        """The test id: the workload's label, then the device."""
        return f"{self.key.label}-{self.device}"


class BenchSession:
    def __init__(self, settings: Settings, devices: list[Device],
                 progress: Callable[[str], None] = print, unavailable: list[str] | None = None,
                 dataset: Dataset | None = None, gate: ReleaseGate | None = None):
        self.settings = settings
        self.dataset = dataset
        #: The release gate (--aiot-baseline), and each workload's pytest-benchmark record.
        self.gate = gate
        self.benchmark_records = BenchmarkRecords(settings)
        self._gate_summary: GateSummary | None = None
        self._calibration: dict[str, np.ndarray] = {}
        self._labelled_inputs: dict[str, Path] = {}
        self.devices = {device.alias: device for device in devices}
        #: Devices adb reported but that cannot run anything (offline, unauthorized).
        self.unavailable = list(unavailable or [])
        self.cache = ArtifactCache(settings.cache_dir)
        self.progress = progress
        self.runners = RunnerChooser(settings.runner, NativeBuilder(settings.cache_dir, progress))
        self.results: list[WorkloadResult] = []
        self._latest: dict[WorkloadSpec, WorkloadResult] = {}
        self.device_facts: dict[str, dict[str, Any]] = {}
        self._prepared: dict[str, PreparedNetwork] = {}
        self._build_errors: dict[str, BuildError] = {}
        self._workdir = Path(tempfile.mkdtemp(prefix="aiotbench-"))
        self.started = time.perf_counter()
        self.prepare_s = 0.0
        self.artifacts_built = 0
        self.artifacts_reused = 0

    # ------------------------------------------------------------------ the workload
    def run(self, spec: WorkloadSpec, nodeid: str = "",
            replacing: WorkloadResult | None = None) -> WorkloadResult:
        """Prepare, deploy, time and check one workload; the result is always recorded (in
        the place of ``replacing``, an earlier timing of the same workload, when given)."""
        framework = frameworks.get(spec.framework)
        result = WorkloadResult(device=spec.device, network=spec.network,
                                framework=spec.framework, backend=framework.backend,
                                variant=spec.variant, nodeid=nodeid,
                                protocol=self.settings.protocol)
        try:
            self._run(spec, framework, result)
        except (FrameworkMissing, VariantUnsupported, RunnerUnavailable) as exc:
            result.status, result.error = SKIPPED, str(exc)
        except (BuildError, ExportError, DeviceError, NativeBuildError) as exc:
            result.status, result.error = FAILED, str(exc)
        except Exception as exc:  # confined to this item; the session goes on
            result.status, result.error = FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            self.record(result, replacing)
            self._latest[spec] = result
        return result

    def measured(self, spec: WorkloadSpec, nodeid: str = "") -> WorkloadResult:
        """The workload's result this session: measured on first request, then shared."""
        return self._latest.get(spec) or self.run(spec, nodeid)

    def _run(self, spec: WorkloadSpec, framework: frameworks.Framework,
             result: WorkloadResult) -> None:
        settings = self.settings
        started = time.perf_counter()
        try:
            card = networks.get(spec.network)
            network = self.network(card)
            result.macs = network.macs
            result.weights, result.weights_sha256 = network.weights, network.weights_sha256
            if network.weights == "pretrained":
                result.published_top1 = card.reference_top1
            self._check_labels(card)
            artifact = export_artifact(network, framework, self.cache, self._announce_export,
                                       variant=spec.variant,
                                       calibration=self._calibration_for(card))
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
        program = self.runners.program(self.device_facts[spec.device], framework.name,
                                       framework.device_packages, framework.device_requirement)
        result.runner = program.kind
        if program.native is not None:
            result.native_runner = program.native.to_json()
        cooldown = (settings.cooldown_s if settings.cooldown_s is not None
                    else device.default_cooldown_s)
        if cooldown:
            time.sleep(cooldown)
            result.cooldown_s = cooldown
        measured = time.perf_counter()
        threads = settings.threads or device.cpu_count()
        if settings.protocol == "paper" and framework.name == "tflite":
            threads = 1  # as the original app ran TFLite
        request = RunRequest(
            framework=framework.name,
            artifact=device.stage(artifact.path, artifact.sha256),
            probe_inputs=device.stage(network.probe_path),
            threads=threads,
            timing=settings.timing(),
            **self._labelled_request(device, card, program))
        raw = device.run(program, request, settings.timeout_s)
        result.measure_s = time.perf_counter() - measured
        if raw.labelled is not None:
            self._score_labelled(raw.labelled, result)

        result.samples_s = raw.samples_s
        result.warmup_samples_s = raw.warmup_samples_s
        result.stats = summarize(result.samples_s, settings.confidence)
        result.load_s, result.first_inference_s = raw.load_s, raw.first_inference_s
        result.stop_reason, result.threads = raw.stop_reason, raw.threads
        result.framework_version, result.runner_runtime = raw.framework_version, raw.runtime
        result.peak_rss_after_load_bytes = raw.peak_memory.after_load
        result.peak_rss_after_timing_bytes = raw.peak_memory.after_timing
        result.notes.extend(raw.notes)
        result.thermal = {"before": raw.thermal_before.to_json(),
                          "after": raw.thermal_after.to_json()}
        result.throttled = throttle_findings(
            result.thermal["before"], result.thermal["after"],
            max_freq_drop=settings.throttle_freq_drop,
            max_temp_rise_c=settings.throttle_temp_rise_c)
        result.validity = compare(raw.probe_outputs, network.reference_outputs,
                                  tolerance_for(spec.variant, settings.rtol))
        if result.top1 is None:
            result.accuracy = result.validity.top1_agreement
            result.accuracy_source = AGREEMENT_SOURCE
        if result.validity.passed:
            result.status = PASSED
        else:
            result.status = INVALID
            result.error = (f"{spec.id}: outputs diverge from the fp32 reference: "
                            f"{result.validity.describe()}")

    def _labelled_request(self, device: Device, card: networks.NetworkCard,
                          program: RunnerProgram) -> dict[str, Any]:
        """The labelled images as this runner takes them: the JPEG files themselves for the
        Python runner (decoded on the device), or one tensor file preprocessed here with
        the same ``preprocess`` for the native runner (a phone has no Pillow)."""
        if self.dataset is None:
            return {}
        if program.kind == "python":
            return {"images": tuple(device.stage(image.path) for image in self.dataset.images),
                    "preprocessing": preprocessing_spec(card)}
        if card.name not in self._labelled_inputs:
            spec = preprocessing_spec(card)
            path = self._workdir / f"{card.name}-labelled-inputs.npy"
            np.save(path, np.concatenate([preprocess(str(image.path), spec)
                                          for image in self.dataset.images]))
            self._labelled_inputs[card.name] = path
        return {"labelled_inputs": device.stage(self._labelled_inputs[card.name])}

    def _score_labelled(self, labelled: LabelledPass, result: WorkloadResult) -> None:
        assert self.dataset is not None
        labels = [image.label for image in self.dataset.images]
        top = labelled.top_k
        result.images = len(labels)
        result.predictions = [row[0] for row in top]
        pairs = list(zip(top, labels, strict=True))
        result.top1 = sum(row[0] == label for row, label in pairs) / len(labels)
        result.top5 = sum(label in row for row, label in pairs) / len(labels)
        result.accuracy, result.accuracy_source = result.top1, LABELLED_SOURCE
        result.end_to_end = summarize(labelled.end_to_end_s, self.settings.confidence)
        result.labelled_inference = summarize(labelled.inference_s, self.settings.confidence)
        result.decoded_on_device = labelled.decoded_on_device
        if self.settings.protocol == "paper":
            result.latency_basis = "end-to-end"

    def _check_labels(self, card: networks.NetworkCard) -> None:
        if self.dataset is None:
            return
        for image in self.dataset.images:
            if image.label >= card.num_classes:
                raise BuildError(
                    f"class {image.class_name!r} of {self.dataset.root} has index {image.label}, "
                    f"but {card.name!r} outputs {card.num_classes} classes; give a labels file "
                    "(--aiot-labels) or a dataset of this network's classes")

    def _calibration_for(self, card: networks.NetworkCard) -> np.ndarray | None:
        """A few labelled images, preprocessed for this network (None: use the probes)."""
        if self.dataset is None:
            return None
        if card.name not in self._calibration:
            step = max(1, len(self.dataset.images) // CALIBRATION_IMAGES)
            chosen = self.dataset.images[::step][:CALIBRATION_IMAGES]
            spec = preprocessing_spec(card)
            self._calibration[card.name] = np.concatenate(
                [preprocess(str(image.path), spec) for image in chosen])
        return self._calibration[card.name]

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
    def record(self, result: WorkloadResult, replacing: WorkloadResult | None = None) -> None:
        if replacing is not None:
            self.results[self.results.index(replacing)] = result
        else:
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
        if self.gate is not None and self._gate_summary is not None:
            document["baseline_comparison"] = gate_table.to_json(self.gate, self._gate_summary)
        return document

    def finish_gate(self) -> GateSummary | None:
        """The comparison with the baseline over the whole session (None: no baseline)."""
        if self.gate is not None:
            self._gate_summary = self.gate.summarize(self.results, self.devices)
        return self._gate_summary

    def write_json(self) -> None:
        assert self.settings.json_path is not None
        json_file.write(self.settings.json_path, self.document())

    def summary_lines(self) -> list[str]:
        if not self.results:
            return []
        lines = table.render(score_all(self.results), self.device_facts)
        if self.gate is not None and self._gate_summary is not None:
            lines += ["", *gate_table.render(self.gate, self._gate_summary), ""]
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
