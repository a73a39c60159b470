"""The run's settings, read from the command line and checked before anything runs."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

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
    cache = (options.get("cache") or os.environ.get("AIOTBENCH_CACHE")
             or rootdir / "models" / "cache")
    json_path = options.get("json")
    return Settings(
        device=options.get("device") or d.device,
        networks=split_names(options.get("network")),
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
        cache_dir=Path(cache),
        json_path=Path(json_path) if json_path else None,
    )


#: The defaults, stated once: the command line's options fall back to these.
DEFAULT = Settings()


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
