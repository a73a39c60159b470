"""The stages of one workload along the flow, each the work of one staged fixture:

    network (once per network) -> artifact (once per framework and variant)
        -> deployed (once per device) -> measured (once per item)

The fixtures (fixtures.py) give each stage its pytest scope, so pytest's own caching
decides what is built again; this module only does the work. A stage that cannot do its
work raises ``StageFailed`` (an error in the item's setup, naming the stage) or
``StageSkipped`` (the device or framework cannot take the workload).
"""

from __future__ import annotations

import dataclasses
import fcntl
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_aiotbench import frameworks, networks, tasks
from pytest_aiotbench.artifacts import (
    Artifact,
    ArtifactCache,
    BuildError,
    PreparedNetwork,
    export_artifact,
    export_worker,
    prepare_network,
)
from pytest_aiotbench.artifacts.cache import ExportCost
from pytest_aiotbench.artifacts.pool import ExportPool, auto_workers
from pytest_aiotbench.devices import Device, DeviceError, DeviceFacts, FrameworkMissing
from pytest_aiotbench.frameworks import ExportError, VariantUnsupported
from pytest_aiotbench.gate.pairing import PAIRED, PairPlan
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.images import Dataset, DatasetError, Labelled
from pytest_aiotbench.images.for_networks import LabelledForNetworks, preprocessing_spec
from pytest_aiotbench.matrix import ArtifactChoice, NetworkChoice
from pytest_aiotbench.measure import WorkloadResult, compare, summarize
from pytest_aiotbench.measure import flags as row_flags
from pytest_aiotbench.measure.flags import FlagKind
from pytest_aiotbench.measure.quiet import BusyCoresWarning, QuietWait, wait_for_quiet
from pytest_aiotbench.measure.result import (
    IMAGE,
    INFERENCE,
    INVALID,
    LABELLED,
    LABELLED_MASKS,
    PASSED,
)
from pytest_aiotbench.measure.thermal import throttle_findings
from pytest_aiotbench.runner.native.build import NativeBuilder
from pytest_aiotbench.runner.native.targets import NativeBuildError
from pytest_aiotbench.runner.program import RunnerChooser, RunnerProgram, RunnerUnavailable
from pytest_aiotbench.runner.protocol import (
    ClassMapRequest,
    LabelledPass,
    PairedRequest,
    ProfileRequest,
    RunRequest,
    RunResult,
    TensorFile,
)
from pytest_aiotbench.settings import Settings
from pytest_aiotbench.tasks.segmentation import mean_iou

#: Held while a network is built (see Stages.network): one build at a time in a process.
_BUILDING = threading.Lock()
#: Largest relative error against fp32 for the reduced-precision variants: they are judged
#: by their accuracy, this only catches an artifact that computes something else entirely.
#: Full int8 is calibrated on labelled images where there are any, and the probes (uniform
#: noise) then fall outside its activation ranges: a trained digits CNN's int8 errs by 0.75
#: of the output's scale on them while agreeing on every top-1; garbage errs by more.
VARIANT_RTOL = {"fp16": 1e-2, "dynamic-int8": 0.5, "int8": 1.0}
#: The timing locks, one set per host whatever the cache: every session on it takes them.
LOCKS = Path(tempfile.gettempdir()) / "aiotbench-locks"


def tolerance_for(variant: str, fp32_rtol: float) -> float:
    return max(fp32_rtol, VARIANT_RTOL.get(variant, fp32_rtol))


def peak_probe_threads(threads: int) -> tuple[int, ...]:
    """The thread counts the peak probe measures: 1, the powers of two below the workloads'
    count, and that count (what a share of peak is taken at)."""
    counts, count = [], 1
    while count < threads:
        counts.append(count)
        count *= 2
    return (*counts, threads)


class StageFailed(pytest.fail.Exception):
    """A stage could not do its work: the item errors in setup, with this message."""

    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage} stage: {message}", pytrace=False)
        self.stage, self.detail = stage, message


class StageSkipped(pytest.skip.Exception):
    """The device or framework cannot take this workload: the item is skipped."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage, self.detail = stage, message


@dataclasses.dataclass(frozen=True)
class Exported:
    """The artifact stage's work: one network's file for one framework in one variant."""

    network: PreparedNetwork
    choice: ArtifactChoice
    artifact: Artifact
    #: When it was exported, in seconds since the stages began (None: from the cache).
    window: tuple[float, float] | None = None

    @property
    def framework(self) -> frameworks.Framework:
        return frameworks.adapter(self.choice.framework, self.network.card.implementation)

    def key(self, device: str) -> WorkloadKey:
        card = self.network.card
        return WorkloadKey(device=device, network=card.name, framework=self.choice.framework,
                           variant=self.choice.variant, implementation=card.implementation,
                           backend=self.framework.backend)


@dataclasses.dataclass(frozen=True)
class Deployed:
    """A workload ready to time: its files are on the device and the request is written."""

    exported: Exported
    device: Device
    program: RunnerProgram
    request: RunRequest

    @property
    def key(self) -> WorkloadKey:
        return self.exported.key(self.device.alias)


@dataclasses.dataclass
class StageCounts:
    """What the stages did this session, for the summary (merged across xdist workers)."""

    prepare_s: float = 0.0
    artifacts_reused: int = 0
    #: Each export made this session, with what it cost.
    exports: list[ExportCost] = dataclasses.field(default_factory=list)

    @property
    def artifacts_built(self) -> int:
        return len(self.exports)

    def add(self, other: StageCounts) -> None:
        self.prepare_s += other.prepare_s
        self.artifacts_reused += other.artifacts_reused
        self.exports += other.exports

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageCounts:
        return cls(**{**data, "exports": [ExportCost(**cost) for cost in data["exports"]]})

    def describe_exports(self) -> str:
        """'3 exported in 41.0 s (slowest: mobilenet_v2.pte, 20.3 s, peak 1.9 GB)'."""
        said = f"{self.artifacts_built} exported"
        if not self.exports:
            return said
        slowest = max(self.exports, key=lambda cost: cost.build_s)
        peak = (f", peak {slowest.peak_rss_bytes / 1e9:.1f} GB"
                if slowest.peak_rss_bytes is not None else "")
        return (f"{said} in {sum(cost.build_s for cost in self.exports):.1f} s (slowest: "
                f"{slowest.artifact}, {slowest.build_s:.1f} s{peak})")


class Stages:
    """Does each stage's work; holds what stages share within a process (the cache, the
    runner builds, the device facts, the preprocessed labelled images)."""

    def __init__(self, settings: Settings, dataset: Callable[[], Labelled | None],
                 progress: Callable[[str], None] = print,
                 pairing: Callable[[WorkloadKey, str], PairPlan] | None = None):
        self.settings = settings
        #: The release gate's question: time this workload beside the baseline's artifact?
        self.pairing = pairing
        self.progress = progress
        self.cache = ArtifactCache(settings.cache_dir)
        self.runners = RunnerChooser(settings.runner, NativeBuilder(settings.cache_dir, progress))
        self.counts = StageCounts()
        self.device_facts: dict[str, DeviceFacts] = {}
        self._workdir = Path(tempfile.mkdtemp(prefix="aiotbench-"))
        self.labelled = LabelledForNetworks(dataset, self._workdir)
        #: The clock the rows' timelines are read on (the session begins about now).
        self.started = time.perf_counter()
        #: The exports started ahead of their items (None: each item exports its own).
        self.pool: ExportPool | None = None
        self._lock = threading.Lock()
        self._networks: dict[NetworkChoice, PreparedNetwork | StageFailed] = {}
        self._preparing: list[tuple[float, float]] = []

    # ---------------------------------------------------------------- network
    def network(self, choice: NetworkChoice) -> PreparedNetwork:
        """Build the network and its fp32 reference answers on the probes (once a process:
        the export pool and the items share it)."""
        prepared = self._networks.get(choice)
        if prepared is None:
            # One build at a time: the seed is the framework's global generator, and two
            # builds drawing from it at once would each get other weights than their seed's.
            with _BUILDING:
                if choice not in self._networks:
                    self._networks[choice] = self._prepared_network(choice)
                prepared = self._networks[choice]
        if isinstance(prepared, StageFailed):
            raise prepared
        return prepared

    def _prepared_network(self, choice: NetworkChoice) -> PreparedNetwork | StageFailed:
        started = time.perf_counter()
        try:
            card = networks.get(choice.name, choice.implementation)
            try:
                self.labelled.check(card)
            except DatasetError as exc:
                raise BuildError(str(exc)) from None
            return prepare_network(card, pretrained=self.settings.weights == "pretrained",
                                   seed=self.settings.seed, probe_count=self.settings.probes,
                                   workdir=self._workdir)
        except BuildError as exc:
            return StageFailed("network", str(exc))
        finally:
            self._preparing_since(started)

    def _preparing_since(self, started: float) -> None:
        """Count [started, now] as preparing: prepare_s is the wall time that some stage
        spent preparing, however many exports ran at once."""
        with self._lock:
            self._preparing.append((started, time.perf_counter()))
            self.counts.prepare_s = _covered(self._preparing)

    def prefetch(self, pairs: list[tuple[NetworkChoice, ArtifactChoice]]) -> None:
        """Start the exports of these (network, artifact) pairs in the export pool, where
        --aiot-export-workers allows more than one at once and there are several."""
        workers = min(auto_workers(self.settings.export_workers), len(pairs))
        if workers < 2 or self.pool is not None:
            return
        export_worker.share_cores(workers)
        self.pool = ExportPool(workers, self._pool_export,
                               lambda exported: exported.artifact.export_peak_rss_bytes)
        self.progress(f"aiotbench: {len(pairs)} artifacts prepared ahead, up to {workers} "
                      "exports at once (--aiot-export-workers)")
        self.pool.start(_networks_in_turn(pairs))

    def _pool_export(self, pair: tuple[NetworkChoice, ArtifactChoice]) -> Exported:
        network, choice = pair
        return self._export(self.network(network), choice)

    # ---------------------------------------------------------------- export
    def artifact(self, network: PreparedNetwork, choice: ArtifactChoice) -> Exported:
        """The framework's file of the network in the variant: the export pool's (waiting
        while it runs), or from the cache or exported now (the cache's lock makes concurrent
        sessions and xdist workers export it once)."""
        ahead = (self.pool.outcome((NetworkChoice(network.card.name,
                                                  network.card.implementation), choice))
                 if self.pool is not None else None)
        if ahead is None:
            return self._export(network, choice)
        started = time.perf_counter()
        try:
            return ahead.result()
        finally:
            self._preparing_since(started)

    def _export(self, network: PreparedNetwork, choice: ArtifactChoice) -> Exported:
        started = time.perf_counter()
        try:
            framework = frameworks.adapter(choice.framework, network.card.implementation)
            artifact = export_artifact(network, framework, self.cache, self._announce_export,
                                       variant=choice.variant,
                                       calibration=self.labelled.calibration(network.card))
        except VariantUnsupported as exc:
            raise StageSkipped("export", str(exc)) from None
        except ExportError as exc:
            raise StageFailed("export", str(exc)) from None
        finally:
            self._preparing_since(started)
        with self._lock:
            if artifact.built:
                self.counts.exports.append(ExportCost.of(artifact))
            else:
                self.counts.artifacts_reused += 1
        if not artifact.built:
            return Exported(network, choice, artifact)
        self.progress(f"aiotbench: exported {artifact.path.name} in {artifact.build_s:.1f} s")
        ended = time.perf_counter()
        return Exported(network, choice, artifact,
                        (started - self.started, ended - self.started))

    def _announce_export(self, label: str) -> None:
        self.progress(f"aiotbench: exporting {label} (not in the cache {self.cache.root}) ...")

    # ---------------------------------------------------------------- deploy
    def check_runner(self, device: Device, key: WorkloadKey) -> None:
        """Before the workload's artifact is exported: skip it where its device can have no
        runner for its framework (no export is spent on it). A device that cannot be asked
        now, a build that fails, or a framework that takes no model of the network's
        implementation is left to the stage that says so (deploy, export)."""
        try:
            card = networks.get(key.network, key.implementation)
            framework = frameworks.adapter(key.framework, card.implementation)
            self.runners.program(self.facts(device), framework.name,
                                 framework.device_packages, framework.device_requirement)
        except RunnerUnavailable as exc:
            raise StageSkipped("deploy", str(exc)) from None
        except (DeviceError, NativeBuildError, ExportError, LookupError, ValueError):
            return

    def deploy(self, exported: Exported, device: Device) -> Deployed:
        """Pick the device's runner for the framework and put the artifact, the probes and
        the labelled images on the device (files already there with the same hash stay)."""
        framework, network, artifact = exported.framework, exported.network, exported.artifact
        try:
            facts = self.facts(device)
            program = self.runners.program(facts, framework.name, framework.device_packages,
                                           framework.device_requirement)
            device.check_program(program)  # a binary it cannot execute: before any push
            threads = self.settings.threads or device.cpu_count()
            if self.settings.protocol == "paper" and framework.name == "tflite":
                threads = 1  # as the original app ran TFLite
            request = RunRequest(
                framework=framework.name,
                artifact=device.stage(artifact.path, artifact.sha256),
                probe_inputs=tuple(
                    TensorFile(one.name, one.dtype, device.stage(path))
                    for one, path in zip(network.card.inputs, network.probe_paths,
                                         strict=True)),
                threads=threads,
                timing=self.settings.timing(),
                paired=self._paired_request(exported, device),
                profile=ProfileRequest() if self.settings.profile else None,
                **self._labelled_request(device, network, program))
        except RunnerUnavailable as exc:
            raise StageSkipped("deploy", str(exc)) from None
        except (DeviceError, NativeBuildError) as exc:
            raise StageFailed("deploy", f"{framework.name} to {device.alias}: {exc}") from None
        return Deployed(exported, device, program, request)

    def _paired_request(self, exported: Exported, device: Device) -> PairedRequest | None:
        """The baseline's artifact on the device too, where the gate pairs this workload."""
        if self.pairing is None:
            return None
        plan = self.pairing(exported.key(device.alias), exported.artifact.sha256)
        if plan.mode != PAIRED or plan.baseline_artifact is None:
            return None
        settings = self.settings
        return PairedRequest(device.stage(plan.baseline_artifact, plan.baseline_sha256),
                             max_time_s=settings.max_time_s,
                             target_rel_ci=settings.target_rel_ci)

    def facts(self, device: Device) -> DeviceFacts:
        if device.alias not in self.device_facts:
            self.device_facts[device.alias] = device.facts()
        return self.device_facts[device.alias]

    def _labelled_request(self, device: Device, network: PreparedNetwork,
                          program: RunnerProgram) -> dict[str, Any]:
        """The labelled items as this runner takes them: for images, the JPEG files
        themselves for the Python runner (decoded on the device), or one tensor file
        preprocessed here with the same ``preprocess`` for the native runner (a phone has no
        Pillow); for arrays, one file per input, for either runner."""
        card, outputs = network.card, network.outputs
        rows = self.labelled.rows(card)
        if rows is None:
            return {}
        dataset = self.labelled.dataset
        axis = tasks.get(card.task).class_map_axis
        maps = {"class_map": None if axis is None else ClassMapRequest(axis, outputs[0].shape)}
        if isinstance(dataset, Dataset) and program.kind == "python":
            return {"images": tuple(device.stage(image.path) for image in dataset.images),
                    "preprocessing": preprocessing_spec(card), **maps}
        return {"labelled_inputs": tuple(TensorFile(name, dtype, device.stage(path))
                                         for name, dtype, path in
                                         self.labelled.files(card, rows)), **maps}

    # ---------------------------------------------------------------- measure
    def measure(self, deployed: Deployed, nodeid: str = "") -> WorkloadResult:
        """Time the deployed workload on its device and check its answers. Raises
        StageFailed when the device gives no measurement, StageSkipped when its runner
        cannot import the framework; an answer that diverges is a result, not a raise.
        With --aiot-quiet=wait, a row timed busy is timed once more where the cores fell
        quiet within the bound; a row still busy is kept, flagged."""
        cooldown_s = self._cool_down(deployed.device)
        if deployed.device.kind == "local" and self.pool is not None:
            self.pool.wait_idle()  # the host's timing never shares its cores with a converter
        measured = time.perf_counter()
        raw, quiet = self._run(deployed)
        result = self._result(deployed, nodeid, raw, quiet)
        if self.settings.quiet == "wait" and result.flagged(FlagKind.BUSY):
            # Waited for in vain before timing, quiet will not come for a second timing.
            again, quiet_again = (self._run(deployed, only_if_quiet=True) if quiet.reached
                                  else (None, quiet))
            waited_s = quiet.waited_s + (quiet_again.waited_s if quiet.reached else 0.0)
            if again is None:
                result.notes.append(f"not re-timed: others still took "
                                    f"{quiet_again.others_share:.0%} of the timed cores "
                                    f"after {waited_s:.0f} s of waiting for quiet")
            else:
                first_share = result.others_share or 0.0
                result = self._result(deployed, nodeid, again, quiet_again)
                result.notes.append(f"re-timed once after waiting for quiet: others took "
                                    f"{first_share:.0%} of the timed cores in the first timing")
            result.quiet_wait_s = waited_s
        result.cooldown_s = cooldown_s
        ended = time.perf_counter()
        result.measure_s = ended - measured
        export = deployed.exported.window
        result.timeline = {"export_start_s": export[0] if export else None,
                           "export_end_s": export[1] if export else None,
                           "timing_start_s": measured - self.started,
                           "timing_end_s": ended - self.started}
        if self.settings.quiet == "warn" and result.flagged(FlagKind.BUSY):
            warnings.warn(BusyCoresWarning(
                f"{result.key.id} flagged busy: " + "; ".join(
                    flag.reason for flag in result.flags if flag.kind == FlagKind.BUSY)
                + " (--aiot-quiet=wait waits for quiet before timing)"), stacklevel=1)
        return result

    def _result(self, deployed: Deployed, nodeid: str, raw: RunResult,
                quiet: QuietWait) -> WorkloadResult:
        """One runner call's answer as the workload's result: timing, accuracy, flags."""
        result = self._described(deployed, nodeid)
        result.quiet_wait_s = quiet.waited_s
        self._take_timing(raw, result)
        if raw.labelled is not None:
            self._score_labelled(raw.labelled, deployed.exported.network, result)
        self._judge(raw, deployed.exported.network, result)
        return result

    def _described(self, deployed: Deployed, nodeid: str) -> WorkloadResult:
        """The result before timing: what runs, from which file, by which runner."""
        network, artifact = deployed.exported.network, deployed.exported.artifact
        return WorkloadResult(
            key=deployed.key, nodeid=nodeid, protocol=self.settings.protocol,
            macs=network.macs, weights=network.weights, weights_sha256=network.weights_sha256,
            task=network.card.task, unit=IMAGE if network.card.takes_images else INFERENCE,
            published_top1=(network.card.reference_top1 if network.weights == "pretrained"
                            else None),
            runner=deployed.program.kind, artifact=artifact.to_json(),
            notes=[*artifact.notes, *deployed.device.run_notes()],
            native_runner=(deployed.program.native.to_json()
                           if deployed.program.native is not None else None))

    def _cool_down(self, device: Device) -> float:
        cooldown = (self.settings.cooldown_s if self.settings.cooldown_s is not None
                    else device.default_cooldown_s)
        if cooldown:
            time.sleep(cooldown)
        return cooldown

    def _run(self, deployed: Deployed, *,
             only_if_quiet: bool = False) -> tuple[RunResult | None, QuietWait]:
        """One runner call under the timing locks, after the wait for quiet (inside them:
        no other timing of this host's sessions takes the cores meanwhile); none where
        ``only_if_quiet`` and the cores did not fall quiet. The device's peak compute is
        asked for until a runner has measured it."""
        device, request = deployed.device, deployed.request
        facts = self.facts(device)
        if not _peak_known(facts):
            request = dataclasses.replace(request,
                                          peak_probe_threads=peak_probe_threads(request.threads))
        settings = self.settings
        try:
            with timing_lock(device.alias, exclusive=device.kind == "local"):
                quiet = (wait_for_quiet(device, settings.quiet_limit, settings.quiet_wait_s)
                         if settings.quiet == "wait" else QuietWait())
                if only_if_quiet and not quiet.reached:
                    return None, quiet
                raw = device.run(deployed.program, request, settings.timeout_s)
        except FrameworkMissing as exc:
            raise StageSkipped("measure", str(exc)) from None
        except DeviceError as exc:
            raise StageFailed("measure", str(exc)) from None
        if raw.peak_compute is not None and not _peak_known(facts):
            facts.peak_compute = raw.peak_compute
        return raw, quiet

    def _take_timing(self, raw: RunResult, result: WorkloadResult) -> None:
        """The runner's samples, statistics, memory and thermal state into the result."""
        settings = self.settings
        result.samples_s = raw.samples_s
        result.warmup_samples_s = raw.warmup_samples_s
        result.stats = summarize(result.samples_s, settings.confidence)
        result.load_s, result.first_inference_s = raw.load_s, raw.first_inference_s
        result.stop_reason, result.threads = raw.stop_reason, raw.threads
        result.framework_version, result.runner_runtime = raw.framework_version, raw.runtime
        result.peak_rss_after_load_bytes = raw.peak_memory.after_load
        result.peak_rss_after_timing_bytes = raw.peak_memory.after_timing
        result.notes.extend(raw.notes)
        result.paired = raw.paired
        result.profile = raw.profile
        result.thermal = {"before": raw.thermal_before.to_json(),
                          "after": raw.thermal_after.to_json()}
        result.competing_load = raw.competing_load
        busy = (row_flags.busy(raw.competing_load, settings.quiet_limit)
                if settings.quiet != "off" else None)
        unstable = row_flags.unstable(result.stats, result.stop_reason, settings.max_time_s,
                                      settings.target_rel_ci)
        result.flags = [*row_flags.throttled(throttle_findings(
            result.thermal["before"], result.thermal["after"],
            max_freq_drop=settings.throttle_freq_drop,
            max_temp_rise_c=settings.throttle_temp_rise_c)),
            *(flag for flag in (busy, unstable) if flag is not None)]

    def _judge(self, raw: RunResult, network: PreparedNetwork, result: WorkloadResult) -> None:
        """The answers against the fp32 reference: passed, or invalid with the figures."""
        result.validity = compare(raw.probe_outputs, network.reference_outputs,
                                  network.outputs,
                                  tolerance_for(result.key.variant, self.settings.rtol),
                                  tasks.get(network.card.task), raw.output_names)
        if result.accuracy is None:  # no labelled data scored it
            result.accuracy = result.validity.agreement
            result.accuracy_source = result.validity.agreement_measure
        if result.validity.passed:
            result.status = PASSED
        else:
            result.status = INVALID
            result.error = (f"{result.key.id}: outputs diverge from the fp32 reference: "
                            f"{result.validity.describe()}")

    def _score_labelled(self, labelled: LabelledPass, network: PreparedNetwork,
                        result: WorkloadResult) -> None:
        if labelled.class_maps is not None:
            masks = self.labelled.masks(network.card, network.outputs[0].shape)
            result.images = len(masks)
            result.miou = mean_iou([np.asarray(found).reshape(mask.shape) for found, mask in
                                    zip(labelled.class_maps, masks, strict=True)], masks)
            result.accuracy, result.accuracy_source = result.miou, LABELLED_MASKS
        else:
            labels = self.labelled.labels()
            top = labelled.top_k
            result.images = len(labels)
            result.predictions = [row[0] for row in top]
            pairs = list(zip(top, labels, strict=True))
            result.top1 = sum(row[0] == label for row, label in pairs) / len(labels)
            result.top5 = sum(label in row for row, label in pairs) / len(labels)
            result.accuracy, result.accuracy_source = result.top1, LABELLED
        result.end_to_end = summarize(labelled.end_to_end_s, self.settings.confidence)
        result.labelled_inference = summarize(labelled.inference_s, self.settings.confidence)
        result.decoded_on_device = labelled.decoded_on_device
        if self.settings.protocol == "paper":
            result.latency_basis = "end-to-end"

    def close(self) -> None:
        import shutil

        if self.pool is not None:
            self.pool.close()
        shutil.rmtree(self._workdir, ignore_errors=True)


def _networks_in_turn(pairs: list[tuple[NetworkChoice, ArtifactChoice]]
                      ) -> list[tuple[NetworkChoice, ArtifactChoice]]:
    """The pairs with the networks taken in turn (each network's first artifact, then each
    one's second, ...): the pool's first exports build different networks side by side, not
    one after another's lock, and the session's last exports are not all of one network."""
    by_network: dict[NetworkChoice, list[tuple[NetworkChoice, ArtifactChoice]]] = {}
    for pair in pairs:
        by_network.setdefault(pair[0], []).append(pair)
    rounds = max((len(group) for group in by_network.values()), default=0)
    return [group[turn] for turn in range(rounds) for group in by_network.values()
            if turn < len(group)]


def _covered(spans: list[tuple[float, float]]) -> float:
    """The time that the union of the spans covers."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _peak_known(facts: DeviceFacts) -> bool:
    return facts.peak_compute is not None and facts.peak_compute.measured


@contextmanager
def timing_lock(device: str, *, exclusive: bool) -> Iterator[None]:
    """Host-wide order between timings (other xdist workers, other sessions): one timing per
    device at a time; and the local host's timing holds the host alone, so it never shares
    cores with another timing, while adb devices time side by side."""
    LOCKS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]", "_", device)
    with open(LOCKS / f"device-{name}.lock", "a") as one_device, \
            open(LOCKS / "host.lock", "a") as host:
        fcntl.flock(one_device, fcntl.LOCK_EX)
        fcntl.flock(host, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # closing the files releases both locks, on any exit
