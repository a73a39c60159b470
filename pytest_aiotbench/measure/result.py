"""One workload's measurement: what was run, on what, how fast, how right."""

from __future__ import annotations

import dataclasses
from typing import Any

from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.flags import Flag, FlagKind, read_flags, throttled
from pytest_aiotbench.measure.stats import LatencyStats
from pytest_aiotbench.measure.validity import Validity
from pytest_aiotbench.runner.protocol import CompetingLoad, PairedTiming, Profile

PASSED, INVALID, FAILED, SKIPPED = "passed", "invalid", "failed", "skipped"
#: Where a result's accuracy came from (``accuracy_source``): the labelled images, or the
#: task's agreement with the fp32 reference (``tasks``: its ``agreement_measure``).
LABELLED = "labelled images"
LABELLED_MASKS = "mIoU on labelled masks"
#: What one inference takes (``unit``): one image, or the model's inputs of any kind.
IMAGE, INFERENCE = "image", "inference"


@dataclasses.dataclass(frozen=True)
class GateVerdict:
    """What the release gate concluded of one workload's median, as its results row says.

    ``mode``: "paired" (the baseline's artifact re-timed beside this one in this session:
    the ratio and interval are of the per-round ratios), "stored" (judged against the
    baseline's stored figures: the ratio of the medians, the interval from both runs'),
    "unchanged" (the same artifact and framework version: stored figures, their noise).
    The gate fills every field it knows; a row a gate of another version wrote may lack any
    but the verdict.
    """

    #: "regressed" (fails the gate), "worse" (beyond the noise, within the limit),
    #: "better", "ok", or "inconclusive" (paired, passes, but the interval reaches beyond
    #: the limit: the rounds could not tell).
    verdict: str
    mode: str | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    #: Paired rounds (None for stored figures).
    rounds: int | None = None
    metric: str | None = None
    limit: str | None = None
    #: Why stored figures were judged where the artifact changed (None otherwise).
    reason: str | None = None
    #: A verdict of worse or regressed on stored figures from a flagged row: which side's
    #: row and its flags, e.g. "this run's row busy" (None otherwise).
    flagged: str | None = None

    @classmethod
    def read(cls, value: Any) -> GateVerdict | None:
        """A row's ``gate`` as a gate older or newer than this reader wrote it: a dict, this
        class, or nothing; None where it carries no verdict. Unknown fields are ignored and a
        field of the wrong type reads as absent, so one odd row never hides a run."""
        if isinstance(value, GateVerdict):
            return value
        if not isinstance(value, dict) or not value.get("verdict"):
            return None

        def number(name: str) -> float | None:
            found = value.get(name)
            return float(found) if isinstance(found, int | float) and \
                not isinstance(found, bool) else None

        def text(name: str) -> str | None:
            found = value.get(name)
            return str(found) if found not in (None, "") else None

        rounds = number("rounds")
        return cls(str(value["verdict"]), text("mode"), number("ratio"), number("ci_low"),
                   number("ci_high"), None if rounds is None else int(rounds), text("metric"),
                   text("limit"), text("reason"), text("flagged"))


@dataclasses.dataclass
class WorkloadResult:
    #: Which workload: device, network, implementation, framework, variant, backend.
    key: WorkloadKey
    status: str = FAILED
    error: str | None = None
    #: The stage that failed or skipped (network, export, deploy, measure); None if none did.
    stage: str | None = None
    stats: LatencyStats | None = None
    samples_s: list[float] = dataclasses.field(default_factory=list)
    warmup_samples_s: list[float] = dataclasses.field(default_factory=list)
    load_s: float | None = None
    first_inference_s: float | None = None
    stop_reason: str | None = None
    threads: int | None = None
    validity: Validity | None = None
    accuracy: float | None = None
    accuracy_source: str | None = None
    #: What the network is for (``tasks``), and what one timed call processes.
    task: str = "classification"
    unit: str = IMAGE
    macs: int | None = None
    weights: str | None = None
    weights_sha256: str | None = None
    artifact: dict[str, Any] | None = None
    framework_version: str | None = None
    #: Which runner measured: "python" (aiot_runner.py) or "native" (the C++ runner).
    runner: str | None = None
    runner_runtime: str | None = None
    #: The native build that measured (target, bundle, compiler), for native rows.
    native_runner: dict[str, Any] | None = None
    #: Peak resident memory of the runner process (VmHWM), after loading and after timing.
    peak_rss_after_load_bytes: int | None = None
    peak_rss_after_timing_bytes: int | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    thermal: dict[str, Any] | None = None
    #: Why the timing may not be trusted (throttled, busy, unstable); empty when it may.
    flags: list[Flag] = dataclasses.field(default_factory=list)
    #: The timed cores' time and the runner's over the timed phase (None: not known).
    competing_load: CompetingLoad | None = None
    cooldown_s: float = 0.0
    #: Seconds spent waiting for the timed cores to be quiet before timing (--aiot-quiet).
    quiet_wait_s: float = 0.0
    #: When, in seconds since the session's stages began: its artifact's export (None for
    #: a file from the cache) and its timing (the measure stage, runner calls included).
    timeline: dict[str, float | None] | None = None
    #: What t in VIPS is: "inference" (steady-state median) or "end-to-end" (paper protocol:
    #: mean over one pass, JPEG decode + preprocessing + inference, first image included).
    latency_basis: str = "inference"
    protocol: str = "rigorous"
    images: int = 0
    top1: float | None = None
    #: A segmentation network's mean IoU on labelled masks.
    miou: float | None = None
    top5: float | None = None
    published_top1: float | None = None
    end_to_end: LatencyStats | None = None
    #: Whether end to end included JPEG decoding on the device (Python runner) or started
    #: from tensors preprocessed on the host (native runner).
    decoded_on_device: bool | None = None
    labelled_inference: LatencyStats | None = None
    predictions: list[int] = dataclasses.field(default_factory=list)
    measure_s: float = 0.0
    nodeid: str = ""
    #: The baseline's artifact timed beside this one (the release gate's paired mode).
    paired: PairedTiming | None = None
    #: The release gate's verdict on this workload (None: no baseline, or not in it).
    gate: GateVerdict | None = None
    #: Where one inference spends its time, operator by operator (None: not asked).
    profile: Profile | None = None

    @property
    def scored(self) -> bool:
        return self.status == PASSED and self.stats is not None and self.accuracy is not None

    @property
    def seconds_per_image(self) -> float:
        """t of VIPS: the steady-state median, or in the paper protocol the mean of the
        one end-to-end pass (total time / images, as the original app)."""
        assert self.stats is not None
        return self.stats.mean_s if self.latency_basis == "end-to-end" else self.stats.median_s

    @property
    def others_share(self) -> float | None:
        """The share of the timed cores other processes took while this row was timed."""
        return self.competing_load.others_share if self.competing_load is not None else None

    def flagged(self, kind: FlagKind) -> bool:
        return any(flag.kind == kind for flag in self.flags)

    # The key's parts, read as a result's own (a test of one's own asserts on them).
    @property
    def runner_label(self) -> str:
        """The runner as the table names it: python, native, or native+glibc where the native
        runner brought its own C library (the loader route)."""
        libc = (self.native_runner or {}).get("libc") or ""
        return (self.runner or "?") + ("+glibc" if libc.endswith("bundled") else "")

    @property
    def device(self) -> str:
        return self.key.device

    @property
    def network(self) -> str:
        return self.key.network

    @property
    def implementation(self) -> str:
        return self.key.implementation

    @property
    def framework(self) -> str:
        return self.key.framework

    @property
    def variant(self) -> str:
        return self.key.variant

    @property
    def backend(self) -> str:
        return self.key.backend

    def to_json(self) -> dict[str, Any]:
        """A flat row: the key's fields and its id first, then the measurement."""
        data = dataclasses.asdict(self)
        data = {**data.pop("key"), "id": self.key.id, **data}
        for name in STATS_FIELDS:
            value = getattr(self, name)
            data[name] = value.to_json() if value else None
        data["validity"] = self.validity.to_json() if self.validity else None
        data["profile"] = self.profile.to_json() if self.profile else None
        data["flags"] = [flag.to_json() for flag in self.flags]
        del data["competing_load"]
        load = self.competing_load.to_json() if self.competing_load is not None else {}
        data["contention"] = {"others_share": self.others_share,
                              "flagged": self.flagged(FlagKind.BUSY), **load}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkloadResult:
        """The inverse of ``to_json`` (how an xdist worker's results reach the controller,
        and how saved runs are read)."""
        fields = {field.name for field in dataclasses.fields(cls)} - {"key"}
        values = {name: value for name, value in data.items() if name in fields}
        values["key"] = WorkloadKey.from_json(data)
        for name in STATS_FIELDS:
            if values.get(name):
                values[name] = LatencyStats.from_json(values[name])
        if values.get("validity"):
            values["validity"] = Validity.from_json(values["validity"])
        if values.get("paired"):
            values["paired"] = PairedTiming.from_json(values["paired"])
        if values.get("profile"):
            values["profile"] = Profile.from_json(values["profile"])
        values["gate"] = GateVerdict.read(values.get("gate"))
        # Files before the flag list held only the thermal findings, as "throttled".
        values["flags"] = (read_flags(data["flags"]) if "flags" in data
                           else throttled(data.get("throttled") or ()))
        contention = data.get("contention") or {}
        if contention.get("cores") is not None:
            values["competing_load"] = CompetingLoad.from_json(contention)
        return cls(**values)


#: The fields that hold latency statistics.
STATS_FIELDS = ("stats", "end_to_end", "labelled_inference")
