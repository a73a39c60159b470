"""The run's settings, read from the command line and checked before anything runs."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

from pytest_aiotbench.gate.thresholds import Threshold, ThresholdError, parse_fail_on
from pytest_aiotbench.runner.program import RUNNER_CHOICES
from pytest_aiotbench.runner.protocol import TIMING_MODES as PROTOCOLS
from pytest_aiotbench.runner.protocol import Timing

WEIGHTS = ("random", "pretrained")
VARIANTS = ("fp32", "fp16", "dynamic-int8", "int8")


class SettingsError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Settings:
    device: str = "local"
    networks: tuple[str, ...] = ()  # empty: every network
    implementations: tuple[str, ...] = ()  # empty: each network in its first implementation
    frameworks: tuple[str, ...] = ()  # empty: every framework
    weights: str = "random"
    seed: int = 0
    threads: int | None = None  # None: the device's cores
    # The stopping rule's defaults are the protocol's (runner.protocol.Timing).
    target_rel_ci: float = Timing.target_rel_ci
    confidence: float = Timing.confidence
    warmup_s: float = Timing.warmup_s
    min_time_s: float = Timing.min_time_s
    max_time_s: float = Timing.max_time_s
    min_samples: int = Timing.min_samples
    rtol: float = 1e-3
    probes: int = 4
    timeout_s: float = 900.0
    local_python: str | None = None
    cooldown_s: float | None = None  # None: the device's default
    throttle_freq_drop: float = 0.10
    throttle_temp_rise_c: float = 10.0
    adb_server: str | None = None
    adb_workdir: str = "/data/local/tmp/aiotbench"
    adb_python: str = "python3"
    keep_deployed: bool = False
    pin_big_cores: bool = True
    dataset: Path | None = None
    labels: Path | None = None
    images: int | None = None  # None: every image of the dataset
    images_per_class: int = 5
    protocol: str = "rigorous"
    variants: tuple[str, ...] = ("fp32",)
    runner: str = "auto"
    cache_dir: Path = Path("models/cache")
    json_path: Path | None = None
    html_path: Path | None = None
    #: Earlier runs to compare with (--aiot-baseline), and what fails against them.
    baseline: tuple[Path, ...] = ()
    fail_on: tuple[Threshold, ...] = ()
    #: Fresh re-timings a regression must survive before its item fails.
    confirm: int = 1

    def timing(self) -> Timing:
        return Timing(mode=self.protocol, warmup_s=self.warmup_s,
                      min_samples=self.min_samples, min_time_s=self.min_time_s,
                      max_time_s=self.max_time_s, target_rel_ci=self.target_rel_ci,
                      confidence=self.confidence)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["cache_dir"] = str(self.cache_dir)
        data["dataset"] = str(self.dataset) if self.dataset else None
        data["labels"] = str(self.labels) if self.labels else None
        data["json_path"] = str(self.json_path) if self.json_path else None
        data["html_path"] = str(self.html_path) if self.html_path else None
        data["baseline"] = [str(path) for path in self.baseline]
        data["fail_on"] = [threshold.text for threshold in self.fail_on]
        return data


def split_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


def parse(options: dict[str, Any], rootdir: Path) -> Settings:
    """Build Settings from option values (strings or numbers); raise SettingsError."""
    d = DEFAULT

    def given(key: str, default: Any) -> Any:
        return _given(options, key, default)

    from pytest_aiotbench.frameworks import UnknownFrameworkError, get

    for key, meaning in LIST_OPTIONS.items():
        value = options.get(key)
        if value is not None and not split_names(str(value)):
            raise SettingsError(f"--aiot-{key}={value!r} names nothing; leave the option out "
                                f"for {meaning}, or name at least one")
    from pytest_aiotbench.networks.implementations import IMPLEMENTATIONS

    implementations = split_names(options.get("implementation"))
    for name in implementations:
        if name not in IMPLEMENTATIONS:
            raise SettingsError(f"--aiot-implementation={name!r}: choose from "
                                f"{', '.join(IMPLEMENTATIONS)}")
    frameworks = split_names(options.get("framework"))
    for name in frameworks:
        try:
            get(name)
        except UnknownFrameworkError as exc:
            raise SettingsError(f"--aiot-framework: {exc}") from None
    if (options.get("pin") or "big") not in ("big", "none"):
        raise SettingsError(f"--aiot-pin={options.get('pin')!r}: choose big or none")
    protocol = options.get("protocol") or d.protocol
    if protocol not in PROTOCOLS:
        raise SettingsError(f"--aiot-protocol={protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if protocol == "paper" and not options.get("dataset"):
        raise SettingsError("--aiot-protocol=paper times one pass over labelled images: "
                            "give them with --aiot-dataset=DIR")
    variants = split_names(options.get("variant")) or d.variants
    for variant in variants:
        if variant not in VARIANTS:
            raise SettingsError(f"--aiot-variant={variant!r}: choose from {', '.join(VARIANTS)}")
    runner = options.get("runner") or d.runner
    if runner not in RUNNER_CHOICES:
        raise SettingsError(f"--aiot-runner={runner!r}: choose one of {', '.join(RUNNER_CHOICES)}")
    weights = options.get("weights") or d.weights
    if weights not in WEIGHTS:
        raise SettingsError(f"--aiot-weights={weights!r}: choose one of {', '.join(WEIGHTS)}")
    cache = Path(options.get("cache") or os.environ.get("AIOTBENCH_CACHE")
                 or rootdir / "models" / "cache")
    _check_folder("cache", cache)
    json_path = _output_file(options, "json", "results.json")
    html_path = _output_file(options, "html", "report.html")
    try:
        fail_on = parse_fail_on(options.get("fail_on"))
    except ThresholdError as exc:
        raise SettingsError(str(exc)) from None
    if fail_on and not options.get("baseline"):
        raise SettingsError("--aiot-fail-on needs a run to compare with: give --aiot-baseline="
                            "PATH (an earlier --aiot-json file or pytest-benchmark run)")
    labelled_only = [t.metric.name for t in fail_on if t.metric.name in ("top1", "top5")]
    if labelled_only and not options.get("dataset"):
        raise SettingsError(f"--aiot-fail-on={labelled_only[0]}: is measured only on labelled "
                            "images; give --aiot-dataset=DIR, or gate on accuracy (agreement "
                            "with the fp32 reference without a dataset)")
    settings = Settings(
        device=options.get("device") or d.device,
        networks=split_names(options.get("network")),
        implementations=implementations,
        frameworks=frameworks,
        weights=weights,
        seed=_number("seed", given("seed", d.seed), int, 0, 2**31 - 1),
        threads=None if options.get("threads") in (None, "", "auto") else
        _number("threads", options["threads"], int, 1, 1024),
        target_rel_ci=_number("rel-ci", given("rel_ci", d.target_rel_ci), float, 1e-4, 1.0),
        confidence=_number("confidence", given("confidence", d.confidence), float, 0.5, 0.999),
        warmup_s=_number("warmup", given("warmup", d.warmup_s), float, 0.0, 3600),
        min_time_s=_number("min-time", given("min_time", d.min_time_s), float, 0.0, 3600),
        max_time_s=_number("max-time", given("max_time", d.max_time_s), float, 0.001, 86400),
        min_samples=_number("min-samples", given("min_samples", d.min_samples), int, 1, 10**6),
        rtol=_number("rtol", given("rtol", d.rtol), float, 0.0, 10.0),
        probes=_number("probes", given("probes", d.probes), int, 1, 1000),
        timeout_s=_number("timeout", given("timeout", d.timeout_s), float, 1.0, 86400),
        local_python=_executable(options.get("local_python")),
        cooldown_s=None if options.get("cooldown") in (None, "") else
        _number("cooldown", options["cooldown"], float, 0.0, 3600),
        throttle_freq_drop=_number("throttle-freq-drop",
                                   given("throttle_freq_drop", d.throttle_freq_drop),
                                   float, 0.0, 1.0),
        throttle_temp_rise_c=_number("throttle-temp-rise",
                                     given("throttle_temp_rise", d.throttle_temp_rise_c),
                                     float, 0.0, 200),
        adb_server=options.get("adb_server") or None,
        adb_workdir=_workdir(options.get("adb_workdir") or d.adb_workdir),
        adb_python=options.get("adb_python") or d.adb_python,
        keep_deployed=bool(options.get("keep_deployed")),
        pin_big_cores=(options.get("pin") or "big") == "big",
        dataset=Path(options["dataset"]) if options.get("dataset") else None,
        labels=Path(options["labels"]) if options.get("labels") else None,
        images=None if options.get("images") in (None, "", "all") else
        _number("images", options["images"], int, 1, 10**7),
        images_per_class=_number("images-per-class",
                                 given("images_per_class", d.images_per_class), int, 1, 10**6),
        protocol=protocol,
        variants=variants,
        runner=runner,
        cache_dir=cache,
        json_path=json_path,
        html_path=html_path,
        baseline=tuple(Path(path) for path in split_names(options.get("baseline"))),
        fail_on=fail_on,
        confirm=_number("confirm", given("confirm", d.confirm), int, 0, 10),
    )
    if settings.min_time_s > settings.max_time_s:
        raise SettingsError(f"--aiot-min-time={settings.min_time_s:g} is above --aiot-max-time="
                            f"{settings.max_time_s:g}: timing cannot last at least the one and "
                            "at most the other; raise the maximum or lower the minimum")
    return settings


#: The defaults, stated once: the command line's options fall back to these.
DEFAULT = Settings()
#: Options that take a comma list, and what leaving them out means.
LIST_OPTIONS = {"device": "the local host", "network": "every registered network",
                "implementation": "each network in its first implementation",
                "framework": "every framework", "variant": "fp32 only"}


def _check_folder(option: str, path: Path) -> None:
    """A folder we will write into: refuse a file in its place or a place we cannot write."""
    if path.exists() and not path.is_dir():
        raise SettingsError(f"--aiot-{option}={path} is a file, not a folder; give a folder "
                            "(it is created if missing)")
    _probe_writable(option, path, path)


def _output_file(options: dict[str, Any], option: str, example: str) -> Path | None:
    """The file an option names (None: not given), checked before anything runs."""
    value = options.get(option)
    if not value:
        return None
    path = Path(value)
    _check_file(option, path, example)
    return path


def _check_file(option: str, path: Path, example: str) -> None:
    """A file we will write through a temporary file beside it: refuse a folder in its place
    or a folder we cannot write into."""
    if path.is_dir():
        raise SettingsError(f"--aiot-{option}={path} is a folder; give a file path, for "
                            f"example {path / example}")
    _probe_writable(option, path.parent, path)


def _probe_writable(option: str, folder: Path, given: Path) -> None:
    """Make and remove a file where writing will happen (the folder, or its nearest existing
    parent when it is still to be made): permission bits alone do not say (root, read-only
    mounts). Nothing is left behind, so a session without workloads changes nothing."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise SettingsError(f"--aiot-{option}={given}: {existing} is a file, so no folder can "
                            "be made under it")
    probe = existing / f".aiotbench-probe-{os.getpid()}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(f"--aiot-{option}={given}: cannot write in {existing} ({reason}); "
                            "choose a writable place") from None


def _given(options: dict[str, Any], key: str, default: Any) -> Any:
    value = options.get(key)
    return default if value in (None, "") else value


def _number(option: str, value: Any, kind: type, low: float, high: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"--aiot-{option}={value!r}: not a {kind.__name__}") from None
    if not low <= number <= high:
        raise SettingsError(f"--aiot-{option}={value!r}: out of range, use {low} to {high}")
    return number


def _workdir(value: str) -> str:
    if not value.startswith("/"):
        raise SettingsError(f"--aiot-adb-workdir={value!r}: give an absolute path on the device")
    return value


def _executable(value: str | None) -> str | None:
    if not value:
        return None
    found = shutil.which(value)
    if found is None:
        raise SettingsError(f"--aiot-local-python={value!r}: no such executable")
    return found
