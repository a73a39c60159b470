"""The run's settings, and the one option table they come from.

Each ``--aiot-*`` option is stated once, as a field of :class:`Settings`: its name, its
default, how its text is read (type, range, choices) and its help. ``pytest_addoption``,
the ini keys (``aiot_<name>`` under ``[pytest]``), the help text with its default, parsing
with its errors and the README's option table are all made from that table.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_aiotbench.devices import AdbOptions
from pytest_aiotbench.gate.pairing import AB_CHOICES
from pytest_aiotbench.gate.thresholds import METRICS, Threshold, ThresholdError, parse_fail_on
from pytest_aiotbench.identity import VARIANTS
from pytest_aiotbench.runner.program import RUNNER_CHOICES
from pytest_aiotbench.runner.protocol import TIMING_MODES, ProfileRequest, Timing

WEIGHTS = ("random", "pretrained")
PIN_CHOICES = ("big", "none")
QUIET_CHOICES = ("warn", "wait", "off")
_OPTION = "aiotbench-option"


class SettingsError(ValueError):
    pass


class _Invalid(ValueError):
    """A reader's complaint about one value; parse() names the option in front of it (a
    path as it is, other text quoted)."""

    def __init__(self, reason: str, quoted: bool = True):
        super().__init__(reason)
        self.quoted = quoted


class _NamesNothing(_Invalid):
    """A comma list given empty; parse() says what leaving the option out means."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option, its ini key and its README row."""

    name: str
    help: str
    #: Turns the text given into the setting's value; raises _Invalid with the reason.
    read: Callable[[str], Any]
    #: The default as help and the README say it, when it is not the value itself.
    default_text: str | None
    #: None: a flag (``store_true``).
    metavar: str | None

    @property
    def flag(self) -> bool:
        return self.metavar is None

    @property
    def dest(self) -> str:
        """The argparse destination, which is also the ini key."""
        return "aiot_" + self.name.replace("-", "_")

    @property
    def command_line(self) -> str:
        return f"--aiot-{self.name}" + ("" if self.flag else f"={self.metavar}")


def option(name: str, default: Any, help: str, read: Callable[[str], Any] = str, *,
           metavar: str | None = "VALUE", default_text: str | None = None) -> Any:
    """A Settings field that is also the option ``--aiot-<name>``."""
    return dataclasses.field(default=default, metadata={
        _OPTION: Option(name, help, read, default_text, metavar)})


# ---------------------------------------------------------------------------- readers
def split_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


class Names:
    """Reads a comma list, each name among ``choices`` (a sequence, or a function giving
    one, asked only when a value is read or help is shown)."""

    def __init__(self, choices: Callable[[], Sequence[str]] | Sequence[str] | None = None,
                 unknown: Callable[[str, Sequence[str]], str] | None = None):
        self._choices, self._unknown = choices, unknown

    def known(self) -> Sequence[str] | None:
        return self._choices() if callable(self._choices) else self._choices

    def __call__(self, text: str) -> tuple[str, ...]:
        chosen = split_names(text)
        if not chosen:
            raise _NamesNothing("names nothing")
        known = self.known()
        for name in chosen:
            if known is not None and name not in known:
                raise _Invalid(self._unknown(name, known) if self._unknown else
                               f"{name!r} is not one of them: choose from {', '.join(known)}")
        return chosen


class OneOf:
    def __init__(self, choices: Sequence[str]):
        self._choices = choices

    def known(self) -> Sequence[str]:
        return self._choices

    def __call__(self, text: str) -> str:
        if text not in self._choices:
            raise _Invalid(f"choose one of {', '.join(self._choices)}")
        return text


def number(kind: type, low: float, high: float, *, unset: str | None = None
           ) -> Callable[[str], Any]:
    """An int or float within [low, high]; ``unset`` is a word that means the default."""

    def read(text: str) -> Any:
        if unset is not None and text == unset:
            return None
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise _Invalid(f"not a {kind.__name__}") from None
        if not low <= value <= high:
            raise _Invalid(f"out of range, use {low} to {high}")
        return value

    return read


def device_path(text: str) -> str:
    if not text.startswith("/"):
        raise _Invalid("give an absolute path on the device")
    return text


def executable(text: str) -> str:
    found = shutil.which(text)
    if found is None:
        raise _Invalid("no such executable")
    return found


def folder(text: str) -> Path:
    """A folder we will write into (made if missing)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise _Invalid("is a file, not a folder; give a folder (it is created if missing)",
                       quoted=False)
    _probe_writable(path)
    return path


def existing_folder(text: str) -> Path:
    """A folder we only read."""
    path = Path(text)
    if not path.is_dir():
        raise _Invalid("is a file, not a folder" if path.exists() else
                       "does not exist; give the folder that holds the files", quoted=False)
    return path


def output_file(example: str) -> Callable[[str], Path]:
    """A file we will write through a temporary file beside it."""

    def read(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise _Invalid(f"is a folder; give a file path, for example {path / example}",
                           quoted=False)
        _probe_writable(path.parent)
        return path

    return read


def paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(part) for part in Names()(text))


def limits(text: str) -> tuple[Threshold, ...]:
    try:
        return parse_fail_on(text)
    except ThresholdError as exc:
        raise _Invalid(str(exc)) from None


def _probe_writable(folder: Path) -> None:
    """Make and remove a file where writing will happen (the folder, or its nearest existing
    parent when it is still to be made): permission bits alone do not say (root, read-only
    mounts). Nothing is left behind, so a session without workloads changes nothing."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise _Invalid(f"{existing} is a file, so no folder can be made under it",
                       quoted=False)
    probe = existing / f".aiotbench-probe-{os.getpid()}"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _Invalid(f"cannot write in {existing} ({reason}); choose a writable place",
                       quoted=False) from None


def _frameworks() -> list[str]:
    from pytest_aiotbench import frameworks

    return frameworks.names()


def _unknown_framework(name: str, known: Sequence[str]) -> str:
    return f"unknown framework {name!r}; known frameworks: {', '.join(known)}"


def _implementations() -> list[str]:
    from pytest_aiotbench.networks.implementations import IMPLEMENTATIONS

    return list(IMPLEMENTATIONS)


# ---------------------------------------------------------------------------- the table
@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of a run; a field made by ``option()`` is a command-line option."""

    devices: tuple[str, ...] = option(
        "device", ("local",), "local, all (local plus every adb device in state device), adb "
        "(every adb device, not the host), or a comma list of device aliases (a device's model "
        "name) or adb serials", Names(), metavar="DEVICES")
    networks: tuple[str, ...] = option(
        "network", (), "comma list of networks; an unknown name is a usage error listing the "
        "known ones", Names(), metavar="NAMES", default_text="every registered network")
    implementations: tuple[str, ...] = option(
        "implementation", (), "comma list of implementations to run each network in: torch, "
        "keras (TensorFlow's own, keras.applications: resnet50, inception_v3, densenet121, "
        "mobilenet_v2)", Names(_implementations), metavar="NAMES",
        default_text="each network's first (torch for the reference six)")
    frameworks: tuple[str, ...] = option(
        "framework", (), "comma list of frameworks", Names(_frameworks, _unknown_framework),
        metavar="NAMES", default_text="every registered framework")
    weights: str = option(
        "weights", "random", "random, or pretrained: torchvision's (or Keras's) ImageNet "
        "weights, downloaded once into the torch hub or Keras cache (where that is impossible "
        "the error says where to put the file)", OneOf(WEIGHTS), metavar="KIND")
    seed: int = option("seed", 0, "seed of the random weights and of the probe inputs",
                       number(int, 0, 2**31 - 1), metavar="N")
    threads: int | None = option(
        "threads", None, "inference threads", number(int, 1, 1024, unset="auto"),
        metavar="N", default_text="the device's cores")
    # The stopping rule's defaults are the protocol's (runner.protocol.Timing).
    target_rel_ci: float = option(
        "rel-ci", Timing.target_rel_ci, "stop timing when the confidence interval of the "
        "median is within this fraction of it", number(float, 1e-4, 1.0), metavar="FRACTION")
    confidence: float = option("confidence", Timing.confidence,
                               "confidence level of that interval", number(float, 0.5, 0.999),
                               metavar="LEVEL")
    warmup_s: float = option("warmup", Timing.warmup_s, "warm-up seconds before timing",
                             number(float, 0.0, 3600), metavar="SECONDS")
    min_time_s: float = option("min-time", Timing.min_time_s,
                               "time each workload at least this long",
                               number(float, 0.0, 3600), metavar="SECONDS")
    max_time_s: float = option("max-time", Timing.max_time_s,
                               "time each workload at most this long",
                               number(float, 0.001, 86400), metavar="SECONDS")
    min_samples: int = option("min-samples", Timing.min_samples,
                              "time at least this many inferences", number(int, 1, 10**6),
                              metavar="N")
    rtol: float = option("rtol", 1e-3, "largest relative error against the fp32 reference "
                         "before the item fails", number(float, 0.0, 10.0), metavar="FRACTION")
    export_workers: int | None = option(
        "export-workers", None, "export worker processes run at once, ahead of the items "
        "that need their files: auto (0) as many as the cores and the memory allow; 1 exports "
        "one at a time as each item needs it", number(int, 0, 64, unset="auto"), metavar="N",
        default_text="auto")
    probes: int = option("probes", 4, "probe inputs checked against the fp32 reference",
                         number(int, 1, 1000), metavar="N")
    timeout_s: float = option("timeout", 900.0, "seconds one runner call may take",
                              number(float, 1.0, 86400), metavar="SECONDS")
    local_python: str | None = option(
        "local-python", None, "the Python that runs the runner on the local device",
        executable, metavar="PATH", default_text="the one running pytest")
    cooldown_s: float | None = option(
        "cooldown", None, "pause before each workload so the SoC cools down",
        number(float, 0.0, 3600), metavar="SECONDS",
        default_text="each device's own: 0 on the local host, 5 on adb devices")
    throttle_freq_drop: float = option(
        "throttle-freq-drop", 0.10, "flag a run whose core frequency fell by more than this "
        "fraction between the start and the end of timing", number(float, 0.0, 1.0),
        metavar="FRACTION")
    throttle_temp_rise_c: float = option(
        "throttle-temp-rise", 10.0, "flag a run whose thermal zone rose by more than this many "
        "degrees between the start and the end of timing", number(float, 0.0, 200),
        metavar="CELSIUS")
    quiet: str = option(
        "quiet", QUIET_CHOICES[0], "competing load on the cores a workload is timed on: warn "
        "(every row says the share of those cores other processes took; above "
        "--aiot-quiet-limit the row is flagged busy), wait (also wait, up to "
        "--aiot-quiet-wait, for that share to fall below the limit before each workload, and "
        "re-time a busy row once where waiting helped), off (no flag, no wait)",
        OneOf(QUIET_CHOICES), metavar="MODE")
    quiet_limit: float = option(
        "quiet-limit", 0.25, "flag a row busy when other processes took more than this "
        "fraction of the cores it was timed on", number(float, 0.0, 1.0), metavar="FRACTION")
    quiet_wait_s: float = option(
        "quiet-wait", 30.0, "with --aiot-quiet=wait, wait at most this long for quiet before "
        "a workload (and again before its one re-timing)", number(float, 0.0, 3600),
        metavar="SECONDS")
    adb_server: str = option("adb-server", AdbOptions.server,
                             "the adb server to ask for devices (started if not running)",
                             metavar="HOST:PORT")
    adb_workdir: str = option("adb-workdir", AdbOptions.workdir, "work folder on adb devices",
                              device_path, metavar="PATH")
    adb_python: str = option("adb-python", AdbOptions.python, "the Python on adb devices",
                             metavar="PATH")
    keep_deployed: bool = option(
        "keep-deployed", False, "leave what was pushed on the devices; a later session then "
        "pushes nothing that is already there with the same hash", metavar=None)
    pin: str = option("pin", "big", "big: on SoCs whose cores differ in max frequency, pin the "
                      "runner to the fastest ones (taskset); none", OneOf(PIN_CHOICES),
                      metavar="CORES")
    dataset: Path | None = option(
        "dataset", None, "labelled images in the ImageNet validation layout "
        "DIR/<class>/*.JPEG, or a .npz of arrays named as a network's inputs plus 'labels' "
        "(text, audio); a classifier's accuracy (top-1, top-5) is then measured on the device "
        "with the deployed artifact", Path, metavar="DIR|NPZ", default_text="none")
    labels: Path | None = option(
        "labels", None, "file mapping each image (path relative to the dataset) to its class "
        "index, one 'path index' per line, for folders that hold only some of the network's "
        "classes", Path, metavar="FILE", default_text="sorted class folders")
    images: int | None = option(
        "images", None, "a seeded, class-balanced subset of this many images",
        number(int, 1, 10**7, unset="all"), metavar="N", default_text="all")
    images_per_class: int = option(
        "images-per-class", 5, "images per class in that subset (the original: 500 = 100 x 5)",
        number(int, 1, 10**6), metavar="N")
    protocol: str = option(
        "protocol", Timing.mode, "rigorous (warm-up, repeat until the median is known) or "
        "paper (the original protocol: one end-to-end pass over the images, first image "
        "included, no warm-up, batch 1, TFLite on one thread)", OneOf(TIMING_MODES),
        metavar="NAME")
    variants: tuple[str, ...] = option(
        "variant", ("fp32",), f"comma list of {', '.join(VARIANTS)}; each an extra workload, "
        "scored on its own accuracy", Names(VARIANTS), metavar="NAMES")
    runner: str = option(
        "runner", RUNNER_CHOICES[0], "auto: the Python runner where the device's Python has "
        "numpy and the framework, else the native runner; python; native (the C++ runner, "
        "built for the device on demand)", OneOf(RUNNER_CHOICES), metavar="KIND")
    cache_dir: Path = option(
        "cache", Path("models/cache"), "artifact cache folder", folder, metavar="DIR",
        default_text="$AIOTBENCH_CACHE or <rootdir>/models/cache")
    json_path: Path | None = option(
        "json", None, "write every sample, the environment and the scores to this JSON file, "
        "rewritten after every workload", output_file("results.json"), metavar="PATH",
        default_text="none")
    html_path: Path | None = option(
        "html", None, "write a self-contained HTML report (charts, sortable tables; opens "
        "without network access) to this file; aiotbench-report makes the same page from "
        "saved --aiot-json files", output_file("report.html"), metavar="PATH",
        default_text="none")
    baseline: tuple[Path, ...] = option(
        "baseline", (), "earlier runs to compare with: --aiot-json files or pytest-benchmark "
        "runs saved from aiotbench items (a comma list or a folder: their spread counts as "
        "noise); a table per device shows each change and whether it is beyond the noise",
        paths, metavar="PATHS", default_text="none")
    fail_on: tuple[Threshold, ...] = option(
        "fail-on", (), "with --aiot-baseline, the changes that fail: a change fails only when "
        "it is beyond both its limit and the noise, e.g. median:+10%,top1:-0.01,vips:-5%; "
        f"metrics: {', '.join(METRICS)}", limits, metavar="LIMITS",
        default_text="none: compare, do not fail")
    confirm: int = option(
        "confirm", 1, "re-time a workload the gate finds regressed up to N times; it fails "
        "only if every re-timing regresses too (0: fail at once)", number(int, 0, 10),
        metavar="N")
    ab: str = option(
        "ab", AB_CHOICES[0], "with --aiot-baseline, auto: where a workload's artifact differs "
        "from the baseline's and the baseline's file is at hand (found by its sha256 in "
        "--aiot-baseline-artifacts or the cache), time both in alternated rounds of the same "
        "runner call and judge the ratio of their medians (drift hits both alike); off: "
        "judge the stored figures only", OneOf(AB_CHOICES), metavar="MODE")
    baseline_artifacts: Path | None = option(
        "baseline-artifacts", None, "a folder holding the baseline's artifacts (kept with the "
        "baseline, e.g. as CI artifacts), searched by sha256 before the cache",
        existing_folder, metavar="DIR", default_text="the cache only")
    keep_artifacts: Path | None = option(
        "keep-artifacts", None, "copy each timed workload's artifact into this folder (a "
        "sub-folder per sha256), to keep beside the --aiot-json results: what a later "
        "session's --aiot-baseline-artifacts reads", folder, metavar="DIR",
        default_text="none")
    profile: bool = option(
        "profile", False, "after each workload's timing, a separate pass of "
        f"{ProfileRequest.runs} inferences with the framework's own profiler on (never in "
        "the timed samples): each operator's time and the kernel library that ran it, in the "
        "terminal (top operator types), the JSON and the HTML report's operators section",
        metavar=None)

    @property
    def pin_big_cores(self) -> bool:
        return self.pin == "big"

    @property
    def adb(self) -> AdbOptions:
        return AdbOptions(server=self.adb_server, workdir=self.adb_workdir,
                          python=self.adb_python, keep_deployed=self.keep_deployed,
                          pin_big_cores=self.pin_big_cores)

    def timing(self) -> Timing:
        return Timing(mode=self.protocol, warmup_s=self.warmup_s,
                      min_samples=self.min_samples, min_time_s=self.min_time_s,
                      max_time_s=self.max_time_s, target_rel_ci=self.target_rel_ci,
                      confidence=self.confidence)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "fail_on":
                value = [threshold.text for threshold in value]
            elif isinstance(value, tuple):
                value = [str(item) if isinstance(item, Path) else item for item in value]
            elif isinstance(value, Path):
                value = str(value)
            data[field.name] = value
        return data


def options() -> Iterator[tuple[str, Option]]:
    """(Settings field, option) for every option, in the table's order."""
    for field in dataclasses.fields(Settings):
        if _OPTION in field.metadata:
            yield field.name, field.metadata[_OPTION]


#: The defaults, stated once in the table above.
DEFAULT = Settings()


def default_text(field: str, entry: Option) -> str:
    """The default as the help and the README say it."""
    if entry.default_text is not None:
        return entry.default_text
    value = getattr(DEFAULT, field)
    if entry.flag:
        return "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def meaning(entry: Option) -> str:
    """The option's help with its choices, where it has a fixed set of them."""
    known = entry.read.known() if isinstance(entry.read, (Names, OneOf)) else None
    return f"{entry.help}; choose from {', '.join(known)}" if known else entry.help


def help_text(field: str, entry: Option) -> str:
    return f"{meaning(entry)} (default: {default_text(field, entry)})"


# ---------------------------------------------------------------------------- parsing
def parse(given: Mapping[str, Any], rootdir: Path) -> Settings:
    """Settings from option values keyed by option name without ``--aiot-`` (text, numbers,
    or None for not given); raise SettingsError naming the option and what to do."""
    values: dict[str, Any] = {}
    for field, entry in options():
        raw = given.get(entry.name, given.get(entry.dest[len("aiot_"):]))
        if raw is None or (raw == "" and entry.name not in LIST_OPTIONS) or raw is False:
            continue
        if entry.flag:
            values[field] = bool(raw)
            continue
        try:
            values[field] = entry.read(str(raw))
        except _NamesNothing:
            raise SettingsError(f"--aiot-{entry.name}={raw!r} names nothing; leave the option "
                                f"out for {default_text(field, entry)}, or name at least "
                                "one") from None
        except _Invalid as exc:
            raise SettingsError(_complaint(entry, raw, exc)) from None
    if "cache_dir" not in values:
        values["cache_dir"] = folder_default(rootdir)
    settings = Settings(**values)
    _check_together(settings)
    return settings


#: Options that take a comma list: given empty, they name nothing (an error).
LIST_OPTIONS = tuple(entry.name for _, entry in options() if isinstance(entry.read, Names))


def _complaint(entry: Option, raw: Any, invalid: _Invalid) -> str:
    given = f"--aiot-{entry.name}={raw!r}" if invalid.quoted else f"--aiot-{entry.name}={raw}"
    reason = str(invalid)
    return f"{given} {reason}" if reason.startswith("is ") else f"{given}: {reason}"


def folder_default(rootdir: Path) -> Path:
    """The cache's default: $AIOTBENCH_CACHE, or models/cache under the rootdir."""
    text = os.environ.get("AIOTBENCH_CACHE") or str(rootdir / DEFAULT.cache_dir)
    try:
        return folder(text)
    except _Invalid as exc:
        raise SettingsError(f"the artifact cache {text} (the default of --aiot-cache): {exc}; "
                            "give --aiot-cache=DIR") from None


def _check_together(settings: Settings) -> None:
    """What no single option can say wrong: options that contradict each other."""
    if settings.min_time_s > settings.max_time_s:
        raise SettingsError(f"--aiot-min-time={settings.min_time_s:g} is above --aiot-max-time="
                            f"{settings.max_time_s:g}: timing cannot last at least the one and "
                            "at most the other; raise the maximum or lower the minimum")
    if settings.protocol == "paper" and settings.dataset is None:
        raise SettingsError("--aiot-protocol=paper times one pass over labelled images: "
                            "give them with --aiot-dataset=DIR")
    if settings.fail_on and not settings.baseline:
        raise SettingsError("--aiot-fail-on needs a run to compare with: give --aiot-baseline="
                            "PATH (an earlier --aiot-json file or pytest-benchmark run)")
    if settings.baseline_artifacts is not None and not settings.baseline:
        raise SettingsError("--aiot-baseline-artifacts holds a baseline's artifacts: give the "
                            "baseline too, --aiot-baseline=PATH")
    labelled_only = [t.metric.name for t in settings.fail_on if t.metric.name in ("top1", "top5")]
    if labelled_only and settings.dataset is None:
        raise SettingsError(f"--aiot-fail-on={labelled_only[0]}: is measured only on labelled "
                            "images; give --aiot-dataset=DIR, or gate on accuracy (agreement "
                            "with the fp32 reference without a dataset)")


# ---------------------------------------------------------------------------- README
def markdown_table() -> str:
    """The README's option table, made from the option table."""
    lines = ["| option | default | meaning |", "|---|---|---|"]
    for field, entry in options():
        command = entry.command_line.replace("|", "\\|")
        cells = [f"`{command}`", default_text(field, entry), meaning(entry)]
        lines.append("| " + " | ".join(cell.replace("<", "\\<") for cell in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m pytest_aiotbench.settings: the README's table
    print(markdown_table())
