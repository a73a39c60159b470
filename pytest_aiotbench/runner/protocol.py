"""The runner protocol, written down once: what the host asks and what a runner answers.

The host writes one :class:`RunRequest` as JSON on the runner's stdin; the runner answers
one JSON object on stdout, which :func:`parse_result` turns into a :class:`RunResult` (or
raises). Two runners implement it: ``aiot_runner.py`` (Python: stdlib, numpy, one
framework) and the native runner (``native/``, C++: one executable per framework).

The version, every message's field names and the enumerations' values are stated once, in
``protocol_schema.json`` beside this file: this module reads it, and the native runner's CMake
project generates ``protocol_fields.hpp`` (``kProtocolVersion`` and one constexpr name per
field) from it, so a field the C++ code names that the schema lacks does not compile. The
classes below are checked against it by the tests (tests/test_runner_protocol.py), as are the
keys each runner really writes. ``aiot_runner.py`` is pushed to a device alone and cannot read
the schema: it keeps its own ``PROTOCOL_VERSION`` (what its code implements), which a test
checks against the schema. The host refuses any other version, and so does each runner, with
a message that says which side to update.

Version history:
  1  unversioned requests; results carried ``schema: 1``.
  2  ``protocol_version`` on both sides; timing settings under ``timing``; ``runner`` and
     ``runtime`` in results; peak resident memory after loading and after timing;
     labelled images either as JPEG paths decoded on the device (``images``, Python
     runner) or as one preprocessed float32 tensor file (``labelled_inputs``, native).
  3  ``peak_probe_threads`` in requests: the thread counts at which the runner measures the
     device's peak compute with a short matrix-multiply probe after timing; results carry
     ``peak_compute`` (null when not asked; ``measured: false`` with the reason where the
     runner has no probe, as the native runner).
  4  ``paired`` in requests and results: the baseline's artifact timed beside this one in
     the same call, in alternated rounds (the release gate's paired mode); null when not
     asked. ``PAIRED_ORDERS`` names which side ran first in a round.
  5  ``profile`` in requests and results: a per-operator profiling pass after timing, on an
     instance of its own (``--aiot-profile``); each operator's mean time per inference and
     the kernel library that ran it, or the reason the runner cannot profile the framework.
  6  ``competing_load`` in results: the timed cores' busy and total time (/proc/stat) and the
     runner's own CPU time (/proc/self/stat) over the timed phase, so the host can tell
     the share of those cores other processes took (null where the device cannot tell).
  7  Any model: ``probe_inputs`` and ``labelled_inputs`` are lists of ``tensor_file``
     (name, dtype, path), one per model input in forward order, of any dtype of the enum
     ``dtype``; a runner converts to the type the artifact declares where they differ
     (litert-torch makes int64 ids int32). ``probe_outputs`` holds per probe one flat list
     per model output, in the order of the new ``output_names``. ``class_map``: the
     labelled pass answers each item's class map (a segmentation's argmax per pixel) in
     ``labelled.class_maps`` instead of its top-k.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from pytest_aiotbench.runner.aiot_runner import core_ticks

#: The protocol's one statement: version, messages and their fields, enumerations.
SCHEMA_PATH = Path(__file__).resolve().with_name("protocol_schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())

#: The version the host speaks (the schema's). Change it together with both runners.
PROTOCOL_VERSION: int = SCHEMA["protocol_version"]

RUNNERS: tuple[str, ...] = tuple(SCHEMA["enums"]["runner"])
TIMING_MODES: tuple[str, ...] = tuple(SCHEMA["enums"]["timing_mode"])
STOP_REASONS: tuple[str, ...] = tuple(SCHEMA["enums"]["stop_reason"])
PAIRED_ORDERS: tuple[str, ...] = tuple(SCHEMA["enums"]["paired_order"])
DTYPES: tuple[str, ...] = tuple(SCHEMA["enums"]["dtype"])


def message_fields(message: str) -> tuple[str, ...]:
    """Every field name of one of the schema's messages ("request", "result", ...)."""
    return tuple(SCHEMA["messages"][message])


def required_fields(message: str) -> tuple[str, ...]:
    """The fields of ``message`` a sender must write (all but the schema's optional ones)."""
    optional = set(SCHEMA.get("optional", {}).get(message, ()))
    return tuple(name for name in message_fields(message) if name not in optional)


class ProtocolError(ValueError):
    """A runner answered something this host cannot read: another version, or bad JSON."""


# ---------------------------------------------------------------------------- request
@dataclasses.dataclass(frozen=True)
class Timing:
    """The stopping rule, applied by the runner on the device."""

    mode: str = "rigorous"  # or "paper": one end-to-end pass over the labelled images
    warmup_s: float = 0.5
    warmup_min_samples: int = 2
    min_samples: int = 10
    min_time_s: float = 1.0
    max_time_s: float = 10.0
    max_samples: int = 100_000
    target_rel_ci: float = 0.02
    confidence: float = 0.95


@dataclasses.dataclass(frozen=True)
class PairedRequest:
    """Time the baseline's artifact beside this one: rounds of one short block per side,
    the side that runs first alternating, until the median of the per-round ratios (this
    over the baseline) is known within ``target_rel_ci`` or a cap is hit."""

    artifact: str  # the baseline's artifact as the device sees it; the same framework
    block_min_samples: int = 3
    block_min_time_s: float = 0.05
    min_rounds: int = 10
    max_rounds: int = 1000
    #: The session's own timing cap and target (the plugin passes its settings').
    max_time_s: float = Timing.max_time_s
    target_rel_ci: float = Timing.target_rel_ci


@dataclasses.dataclass(frozen=True)
class ProfileRequest:
    """A per-operator profiling pass after timing: ``warmup_runs`` untimed inferences, then
    ``runs`` profiled ones, on an instance of its own with the framework's profiler on."""

    runs: int = 10
    warmup_runs: int = 2


@dataclasses.dataclass(frozen=True)
class TensorFile:
    """One model input's values in a .npy file: rows along the first axis."""

    name: str
    dtype: str  # one of DTYPES
    path: str  # as the device sees it


@dataclasses.dataclass(frozen=True)
class ClassMapRequest:
    """The class of each position of the first output: the argmax along ``axis`` of an
    output of ``shape`` (the fp32 model's)."""

    axis: int
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class RunRequest:
    framework: str
    artifact: str  # paths as the device sees them
    #: One file per model input, in forward order: (n, *shape[1:]) of its dtype.
    probe_inputs: tuple[TensorFile, ...]
    threads: int
    timing: Timing = Timing()
    #: Python runner: JPEG files decoded and preprocessed on the device with ``preprocessing``.
    images: tuple[str, ...] = ()
    preprocessing: dict[str, Any] | None = None
    #: Native runner: the same images preprocessed on the host, one file per model input.
    labelled_inputs: tuple[TensorFile, ...] | None = None
    #: Answer each labelled item by its class map (segmentation), not its top-k (None).
    class_map: ClassMapRequest | None = None
    #: Thread counts at which to measure the device's peak compute (empty: not asked). The
    #: host asks once per device and session, so the probe's second or so is paid once.
    peak_probe_threads: tuple[int, ...] = ()
    #: The release gate's paired timing (None: not asked).
    paired: PairedRequest | None = None
    #: The per-operator profile (None: not asked).
    profile: ProfileRequest | None = None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["images"] = list(self.images)
        data["peak_probe_threads"] = list(self.peak_probe_threads)
        # Strict JSON (the native runner's parser takes no NaN/Infinity token): a non-finite
        # number, such as an unbounded time cap, travels as a string both runners read.
        return json.dumps(_finite_json({"protocol_version": PROTOCOL_VERSION, **data}),
                          allow_nan=False)


def _finite_json(value: Any) -> Any:
    """``value`` with every non-finite float written as "NaN", "Infinity" or "-Infinity"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(item) for item in value]
    return value


# ----------------------------------------------------------------------------- result
@dataclasses.dataclass(frozen=True)
class ThermalState:
    temperatures_c: dict[str, float]
    core_khz: dict[str, int]
    time: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CompetingLoad:
    """The time of the cores the runner was timed on, over the timed phase (or over a window
    in which no runner ran: ``own_ticks`` 0), in the kernel's clock ticks: all of it, the
    busy part (steal included: a hypervisor's other guests compete too), and the runner's
    own CPU time. What is busy and not the runner's is other processes'."""

    cores: tuple[int, ...]
    total_ticks: int
    busy_ticks: int
    own_ticks: int

    @property
    def others_share(self) -> float | None:
        """The share of the cores' time other processes took, in [0, 1] (a clock tick's
        rounding can push the difference a little outside); None over no time at all."""
        if self.total_ticks <= 0:
            return None
        return min(1.0, max(0.0, (self.busy_ticks - self.own_ticks) / self.total_ticks))

    def to_json(self) -> dict[str, Any]:
        return {"cores": list(self.cores), "total_ticks": self.total_ticks,
                "busy_ticks": self.busy_ticks, "own_ticks": self.own_ticks}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CompetingLoad:
        """A runner's ``competing_load``, or its copy in a results row."""
        return cls(tuple(int(core) for core in raw["cores"]), int(raw["total_ticks"]),
                   int(raw["busy_ticks"]), int(raw["own_ticks"]))

    @classmethod
    def between(cls, before: str, after: str, cores: list[int] | None) -> CompetingLoad | None:
        """``cores``' time between two readings of /proc/stat's text (every core's where
        ``cores`` is None), with no runner of ours in between; None where a reading lacks
        them. The Python runner reads /proc/stat with the same ``core_ticks``."""
        first, second = core_ticks(before, cores), core_ticks(after, cores)
        if first is None or second is None or first[0] != second[0]:
            return None
        return cls(tuple(second[0]), second[2] - first[2], second[1] - first[1], 0)


@dataclasses.dataclass(frozen=True)
class PeakMemory:
    """Peak resident set size (VmHWM) of the runner process, in bytes; None where the
    device does not say (no /proc)."""

    after_load: int | None
    after_timing: int | None


@dataclasses.dataclass(frozen=True)
class PeakCompute:
    """The device's peak compute as the runner's matrix-multiply probe found it: GFLOP/s
    (2 floating-point operations per multiply-accumulate) per thread count. ``measured`` is
    False, with the reason in ``method``, where the runner has no probe."""

    measured: bool
    gflops_by_threads: dict[int, float]
    method: str

    def at(self, threads: int | None) -> float | None:
        """The peak at this thread count (None: not measured at it)."""
        return self.gflops_by_threads.get(threads) if threads is not None else None

    def to_json(self) -> dict[str, Any]:
        return {"measured": self.measured, "method": self.method,
                "gflops_by_threads": {str(k): v for k, v in self.gflops_by_threads.items()}}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PeakCompute:
        return cls(bool(raw["measured"]),
                   {int(k): float(v) for k, v in raw["gflops_by_threads"].items()},
                   str(raw["method"]))


@dataclasses.dataclass(frozen=True)
class LabelledPass:
    end_to_end_s: list[float]
    inference_s: list[float]
    top_k: list[list[int]]
    #: True when the runner decoded the JPEGs itself (Python runner); False when the host
    #: preprocessed them and end to end means read + inference (native runner).
    decoded_on_device: bool
    #: Per item, the class of each position of the first output (None: not asked).
    class_maps: list[list[int]] | None = None


@dataclasses.dataclass(frozen=True)
class PairedRound:
    order: str  # one of PAIRED_ORDERS
    baseline_s: list[float]
    current_s: list[float]


@dataclasses.dataclass(frozen=True)
class PairedTiming:
    """The baseline's artifact timed beside this one in the same runner call."""

    load_s: float
    warmup_samples_s: list[float]
    rounds: list[PairedRound]
    stop_reason: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PairedTiming:
        """Read (and check) a runner's ``paired`` answer, or its copy in a results row."""
        stop_reason = _text(raw, "stop_reason")
        if stop_reason not in STOP_REASONS:
            raise ValueError(f"paired stop_reason {stop_reason!r}")
        rounds = []
        for entry in raw["rounds"]:
            order = _text(entry, "order")
            if order not in PAIRED_ORDERS:
                raise ValueError(f"paired round order {order!r}")
            rounds.append(PairedRound(order, _floats(entry["baseline_s"]),
                                      _floats(entry["current_s"])))
        return cls(float(raw["load_s"]), _floats(raw["warmup_samples_s"]), rounds, stop_reason)


#: The ``delegate`` of an operator the framework ran with its own kernels, outside any delegate.
NO_DELEGATE: str = SCHEMA["enums"]["no_delegate"][0]


@dataclasses.dataclass(frozen=True)
class ProfiledOp:
    op_type: str
    name: str
    time_s: float  # mean per profiled inference
    delegate: str  # the kernel library that ran it, or NO_DELEGATE

    @property
    def fell_back(self) -> bool:
        return self.delegate == NO_DELEGATE


@dataclasses.dataclass(frozen=True)
class Profile:
    """Where one inference spends its time, operator by operator, as the framework's own
    profiler saw it in a pass of its own after timing; or why there is no such record."""

    ops: tuple[ProfiledOp, ...] = ()
    total_s: float | None = None  # the mean profiled inference, on the runner's clock
    runs: int = 0
    source: str = ""
    unavailable: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable is None

    @property
    def ops_s(self) -> float:
        """The operators' times summed: what the profiler accounts for of ``total_s``."""
        return sum(op.time_s for op in self.ops)

    def to_json(self) -> dict[str, Any]:
        """The results file's form: the records, or only the reason."""
        if self.unavailable is not None:
            return {"unavailable": self.unavailable}
        return {"ops": [dataclasses.asdict(op) for op in self.ops], "total_s": self.total_s,
                "runs": self.runs, "source": self.source}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Profile:
        """A runner's ``profile`` answer, or its copy in a results file."""
        if raw.get("unavailable") is not None:
            return cls(unavailable=str(raw["unavailable"]), source=str(raw.get("source", "")))
        ops = tuple(ProfiledOp(_text(op, "op_type"), _text(op, "name"), float(op["time_s"]),
                               _text(op, "delegate")) for op in raw["ops"])
        return cls(ops, float(raw["total_s"]), int(raw["runs"]), _text(raw, "source"))


@dataclasses.dataclass(frozen=True)
class RunResult:
    runner: str
    runtime: str
    framework: str
    framework_version: str
    threads: int
    load_s: float
    first_inference_s: float | None
    warmup_samples_s: list[float]
    samples_s: list[float]
    stop_reason: str
    #: Per probe, one flat list per output, in the order of ``output_names``.
    probe_outputs: list[list[list[float]]]
    labelled: LabelledPass | None
    thermal_before: ThermalState
    thermal_after: ThermalState
    peak_memory: PeakMemory
    notes: list[str]
    #: The peak probe's answer (None: the request did not ask for it).
    peak_compute: PeakCompute | None = None
    #: The paired timing's answer (None: the request did not ask for it).
    paired: PairedTiming | None = None
    #: The per-operator profile (None: the request did not ask for it).
    profile: Profile | None = None
    #: The timed cores' time over the timed phase (None: the device cannot tell).
    competing_load: CompetingLoad | None = None
    #: The names the artifact gives its outputs, in its order.
    output_names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class RunFailure:
    """A runner that could report its own failure: the stage and its message."""

    runner: str
    stage: str
    error: str
    detail: str = ""


def parse_result(stdout: str) -> RunResult | RunFailure | None:
    """The runner's answer: its last JSON line. None when it wrote none (it crashed).

    Raises ProtocolError for another protocol version or a malformed answer.
    """
    raw = _last_json_object(stdout)
    if raw is None:
        return None
    version = raw.get("protocol_version", 1 if "schema" in raw else None)
    if version != PROTOCOL_VERSION:
        runner = raw.get("runner", "python")
        fix = ("rebuild the native runner (aiotbench-build-runner) with this plugin"
               if runner == "native" else "deploy the runner of this plugin's version")
        if isinstance(version, int) and version > PROTOCOL_VERSION:
            fix = "update pytest-aiotbench on the host"
        raise ProtocolError(f"the {runner} runner speaks protocol {version}, this host "
                            f"speaks {PROTOCOL_VERSION}: {fix}")
    try:
        if not raw["ok"]:
            _require(raw, "failure")
            return RunFailure(_text(raw, "runner"), _text(raw, "stage"), _text(raw, "error"),
                              str(raw.get("detail") or ""))
        return _result(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed runner result ({type(exc).__name__}: {exc})") from exc


def _require(raw: dict[str, Any], message: str) -> None:
    missing = [name for name in required_fields(message) if name not in raw]
    if missing:
        raise KeyError(f"the {message} lacks {', '.join(missing)}")


def _result(raw: dict[str, Any]) -> RunResult:
    _require(raw, "result")
    runner = _text(raw, "runner")
    if runner not in RUNNERS:
        raise ValueError(f"runner {runner!r}")
    stop_reason = _text(raw, "stop_reason")
    if stop_reason not in STOP_REASONS:
        raise ValueError(f"stop_reason {stop_reason!r}")
    labelled = raw.get("labelled")
    memory = raw["peak_rss_bytes"]
    peak = raw["peak_compute"]
    load = raw["competing_load"]
    return RunResult(
        runner=runner,
        runtime=_text(raw, "runtime"),
        framework=_text(raw, "framework"),
        framework_version=_text(raw, "framework_version"),
        threads=int(raw["threads"]),
        load_s=float(raw["load_s"]),
        first_inference_s=_optional_float(raw["first_inference_s"]),
        warmup_samples_s=_floats(raw["warmup_samples_s"]),
        samples_s=_floats(raw["samples_s"]),
        stop_reason=stop_reason,
        probe_outputs=[[_floats(output) for output in probe] for probe in raw["probe_outputs"]],
        output_names=[str(name) for name in raw["output_names"]],
        labelled=None if labelled is None else LabelledPass(
            end_to_end_s=_floats(labelled["end_to_end_s"]),
            inference_s=_floats(labelled["inference_s"]),
            top_k=[[int(i) for i in row] for row in labelled["top_k"]],
            decoded_on_device=bool(labelled["decoded_on_device"]),
            class_maps=None if labelled["class_maps"] is None else [
                [int(i) for i in row] for row in labelled["class_maps"]]),
        thermal_before=_thermal(raw["thermal"]["before"]),
        thermal_after=_thermal(raw["thermal"]["after"]),
        peak_memory=PeakMemory(_optional_int(memory["after_load"]),
                               _optional_int(memory["after_timing"])),
        notes=[str(note) for note in raw["notes"]],
        peak_compute=None if peak is None else PeakCompute.from_json(peak),
        paired=None if raw["paired"] is None else PairedTiming.from_json(raw["paired"]),
        profile=None if raw["profile"] is None else Profile.from_json(raw["profile"]),
        competing_load=None if load is None else CompetingLoad.from_json(load),
    )


def _thermal(raw: dict[str, Any]) -> ThermalState:
    return ThermalState({str(k): float(v) for k, v in raw["temperatures_c"].items()},
                        {str(k): int(v) for k, v in raw["core_khz"].items()},
                        float(raw["time"]))


def _last_json_object(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "ok" in parsed:
            return parsed
    return None


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is {type(value).__name__}, not a string")
    return value


def _floats(values: Any) -> list[float]:
    if not isinstance(values, list):
        raise TypeError(f"expected a list of numbers, got {type(values).__name__}")
    return [float(v) for v in values]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
