"""pytest hooks: options, items, the fixture, the summary. Thin: the work is elsewhere."""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path

import pytest

from pytest_aiotbench import frameworks, networks, settings
from pytest_aiotbench.devices import (
    AdbOptions,
    DeviceError,
    UnknownDeviceError,
    select_devices,
)
from pytest_aiotbench.gate import BaselineError, ReleaseGate, load_baseline
from pytest_aiotbench.gate.thresholds import METRICS
from pytest_aiotbench.images import DatasetError, load_dataset
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.report import benchmark_records
from pytest_aiotbench.session import BenchSession, WorkloadSpec
from pytest_aiotbench.workload import Workload, outcome

SESSION_KEY = pytest.StashKey[BenchSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aiotbench", "on-device inference benchmark (AIoTBench VIPS/VOPS)")

    def add(name: str, help: str, **kwargs: object) -> None:
        dest = f"aiot_{name.replace('-', '_')}"
        group.addoption(f"--aiot-{name}", dest=dest, help=help, **kwargs)
        # Every option is also an ini key (aiot_runner = native under [pytest]); the command
        # line wins.
        parser.addini(dest, f"default of --aiot-{name}: {help}",
                      type="bool" if kwargs.get("action") == "store_true" else "string")

    add("device", "local (default), all (local + every adb device), or a comma list of "
        "device aliases/serials", metavar="DEVICES")
    add("network", "comma list of networks to run (default: all registered)", metavar="NAMES")
    add("framework", "comma list of frameworks: tflite, onnxruntime, pytorch-mobile, "
        "executorch (default: all)", metavar="NAMES")
    add("weights", "random (default) or pretrained (torchvision's ImageNet weights)",
        metavar="KIND")
    add("seed", "seed of the random weights and probe inputs (default 0)")
    add("threads", "inference threads (default: the device's cores)", metavar="N")
    add("rel-ci", "stop timing when the 95%% CI of the median is within this fraction "
        "(default 0.02)", metavar="FRACTION")
    add("confidence", "confidence level of that interval (default 0.95)")
    add("warmup", "warm-up seconds before timing (default 0.5)",
        metavar="SECONDS")
    add("min-time", "time at least this long (default 1)", metavar="SECONDS")
    add("max-time", "time at most this long per workload (default 10)",
        metavar="SECONDS")
    add("min-samples", "time at least this many inferences (default 10)",
        metavar="N")
    add("rtol", "largest relative error against the fp32 reference (default 1e-3)")
    add("probes", "probe inputs compared against the fp32 reference (default 4)",
        metavar="N")
    add("timeout", "seconds one runner call may take (default 900)",
        metavar="SECONDS")
    add("local-python", "the Python that runs the runner on the local device (default: the "
        "one running pytest)", metavar="PATH")
    add("cooldown", "pause before each workload (default: 0 on local, 5 on adb devices)",
        metavar="SECONDS")
    add("throttle-freq-drop", "flag a run whose core frequency fell by more than this "
        "fraction (default 0.1)", metavar="FRACTION")
    add("throttle-temp-rise", "flag a run whose thermal zone rose by more than this "
        "(default 10 C)", metavar="CELSIUS")
    add("adb-server", "the adb server to ask for devices (default 127.0.0.1:5037, started "
        "if not running)", metavar="HOST:PORT")
    add("adb-workdir", "work folder on adb devices (default /data/local/tmp/aiotbench)",
        metavar="PATH")
    add("adb-python", "the Python on adb devices (default python3)", metavar="PATH")
    add("keep-deployed", "leave the pushed runner and artifacts on the devices (a later "
        "session then skips pushing them)", action="store_true", default=False)
    add("pin", "big (default): pin the runner to the fastest cores where cores differ; none",
        metavar="CORES")
    add("dataset", "labelled images, ImageNet validation layout DIR/<class>/*.JPEG: accuracy "
        "is measured on the device with the deployed artifact", metavar="DIR")
    add("labels", "file mapping each image (path relative to the dataset) to its class "
        "index, one 'path index' per line (default: sorted class folders)", metavar="FILE")
    add("images", "a seeded, class-balanced subset of this many images (default: all)",
        metavar="N")
    add("images-per-class", "images per class in that subset (default 5, as the original "
        "100 x 5)", metavar="N")
    add("protocol", "rigorous (default: warm-up, repeat until the median is known) or paper "
        "(the original: one end-to-end pass over the images, first image included, TFLite on "
        "one thread)", metavar="NAME")
    add("variant", "comma list of variants: fp32 (default), fp16, dynamic-int8, int8",
        metavar="NAMES")
    add("runner", "auto (default: the Python runner where the device's Python has the "
        "framework, else the native runner), python, or native (the C++ runner, built for "
        "this host on demand)", metavar="KIND")
    add("cache", "artifact cache folder (default: $AIOTBENCH_CACHE or <rootdir>/models/cache)",
        metavar="DIR")
    add("json", "write every sample, the environment and the scores to this JSON file",
        metavar="PATH")
    add("baseline", "compare with earlier runs: --aiot-json files or pytest-benchmark runs "
        "saved from aiotbench items (a comma list or a folder: their spread counts as noise); "
        "a table per device shows each change and whether it is beyond the noise",
        metavar="PATHS")
    add("fail-on", "with --aiot-baseline, the changes that fail: a change fails only when it "
        "is beyond both its limit and the noise, e.g. median:+10%,top1:-0.01,vips:-5%; "
        f"metrics: {', '.join(METRICS)}", metavar="LIMITS")
    add("confirm", "re-time a workload the gate finds regressed up to N times; it fails only "
        "if every re-timing regresses too (default 1; 0: fail at once)", metavar="N")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "aiot: an AIoTBench workload item")
    options = {name[len("aiot_"):]: _option_or_ini(config, name, value)
               for name, value in vars(config.option).items() if name.startswith("aiot_")}
    try:
        parsed = settings.parse(options, Path(config.rootpath))
        selection = select_devices(parsed.device, local_python=parsed.local_python,
                                   adb=AdbOptions(server=parsed.adb_server,
                                                  workdir=parsed.adb_workdir,
                                                  python=parsed.adb_python,
                                                  keep_deployed=parsed.keep_deployed,
                                                  pin_big_cores=parsed.pin_big_cores))
        dataset = None
        if parsed.dataset is not None:
            dataset = load_dataset(parsed.dataset, labels_file=parsed.labels, count=parsed.images,
                                   per_class=parsed.images_per_class, seed=parsed.seed)
        gate = None
        if parsed.baseline:
            gate = ReleaseGate(load_baseline(parsed.baseline), parsed.fail_on, parsed.confirm)
    except (settings.SettingsError, UnknownDeviceError, DeviceError, DatasetError,
            BaselineError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = BenchSession(parsed, selection.devices,
                                             _progress_writer(config), selection.unavailable,
                                             dataset, gate)


def _option_or_ini(config: pytest.Config, name: str, value: object) -> object:
    if value not in (None, False):
        return value
    try:
        from_ini = config.getini(name)
    except ValueError:  # not one of ours
        return value
    return from_ini if from_ini not in ("", None) else value


@pytest.hookimpl(wrapper=True)
def pytest_report_header(config: pytest.Config):
    """pytest-benchmark's header line says what applies to aiotbench items."""
    lines = yield
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return lines
    # One element: pytest prints the hooks' results in reverse, each element's lines in order.
    return [*benchmark_records.replace_header(session.settings, lines), _header(session)]


def _header(session: BenchSession) -> list[str]:
    lines = [f"aiotbench: devices {', '.join(session.devices)}; artifact cache "
             f"{session.settings.cache_dir}; protocol {session.settings.protocol}; runner "
             f"{session.settings.runner}"]
    if session.dataset is not None:
        lines.append(f"aiotbench: accuracy on {session.dataset.describe()}")
    if session.unavailable:
        lines.append("aiotbench: devices seen but not usable (not benchmarked): "
                     + ", ".join(session.unavailable))
    if session.gate is not None:
        lines.append(f"aiotbench: against the {session.gate.describe()}")
        protocol = session.gate.baseline.protocol
        if protocol and protocol != session.settings.protocol:
            lines.append(f"aiotbench: warning: the baseline used the {protocol} protocol, this "
                         f"run the {session.settings.protocol} protocol")
    return lines


def _progress_writer(config: pytest.Config):
    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)

    return write


#: The fixtures parametrized over the workload matrix: the workload item's, and the measured
#: result a test of one's own asserts on.
MATRIX_FIXTURES = ("aiot_workload", "aiot_measured")
#: What ``@pytest.mark.aiot(...)`` may select a test's workloads by (fnmatch patterns).
SELECTORS = ("network", "framework", "variant", "device")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    argname = next((name for name in MATRIX_FIXTURES if name in metafunc.fixturenames), None)
    if argname is None:
        return
    session = metafunc.config.stash[SESSION_KEY]
    chosen = session.settings
    cards = _networks_for(metafunc)
    if chosen.networks:
        cards = [card for card in cards if card.name in chosen.networks]
    framework_names = list(chosen.frameworks) or frameworks.names()
    specs = [WorkloadSpec(card.name, framework, device, variant)
             for card in cards for framework in framework_names
             for variant in chosen.variants for device in session.devices]
    marker = metafunc.definition.get_closest_marker("aiot")
    if marker is not None:
        specs = [spec for spec in specs if _selected(spec, marker, metafunc)]
    # Every workload item carries the aiot marker: -m aiot selects them, -m "not aiot" the rest.
    metafunc.parametrize(argname, [pytest.param(spec, id=spec.id, marks=pytest.mark.aiot)
                                   for spec in specs], indirect=True)


def _selected(spec: WorkloadSpec, marker: pytest.Mark, metafunc: pytest.Metafunc) -> bool:
    unknown = sorted(set(marker.kwargs) - set(SELECTORS))
    if unknown or marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.aiot takes "
                                f"{', '.join(f'{key}=' for key in SELECTORS)} patterns, not "
                                f"{', '.join(unknown) or repr(marker.args)}")
    for key, patterns in marker.kwargs.items():
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        if not any(fnmatch.fnmatchcase(getattr(spec, key), pattern) for pattern in patterns):
            return False
    return True


def _networks_for(metafunc: pytest.Metafunc) -> list[networks.NetworkCard]:
    """A module that registers networks benchmarks those; any other module benchmarks the
    networks not owned by a test module (the reference six and those from conftests)."""
    module_name = metafunc.module.__name__
    every = networks.cards()
    own = [card for card in every if card.origin == module_name]
    if own:
        return own
    patterns = metafunc.config.getini("python_files")
    return [card for card in every if not _is_test_module(card.origin, patterns)]


def _is_test_module(module_name: str, patterns: list[str]) -> bool:
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return False
    return any(fnmatch.fnmatch(os.path.basename(path), pattern) for pattern in patterns)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect, so they apply to added items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if _asked_on_command_line(config) and not any(
            "aiot_workload" in getattr(item, "fixturenames", ()) for item in items):
        _add_reference_matrix(session, items)
    chosen = config.stash[SESSION_KEY].settings
    known = networks.names()
    unknown = [name for name in chosen.networks if name not in known]
    if unknown:
        raise pytest.UsageError(f"--aiot-network: unknown network {', '.join(map(repr, unknown))}; "
                                f"known networks: {', '.join(known)}")
    # A workload module whose networks the filters left out has an empty matrix: deselect
    # its placeholder item rather than report it skipped.
    empty = [item for item in items if _is_workload(item)
             and not isinstance(_workload_param(item), WorkloadSpec)]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [item for item in items if item not in empty]


def _is_workload(item: pytest.Item) -> bool:
    return any(name in getattr(item, "fixturenames", ()) for name in MATRIX_FIXTURES)


def _asked_on_command_line(config: pytest.Config) -> bool:
    return any(str(arg).startswith("--aiot-") for arg in config.invocation_params.args)


def _add_reference_matrix(session: pytest.Session, items: list[pytest.Item]) -> None:
    """The first command a user types, ``pytest --aiot-device=all`` in a project without
    workload modules, benchmarks the reference matrix rather than finding nothing to run."""
    from pytest_aiotbench.suite import test_reference

    # Named as the package, not by a path outside the project, so ids read as in --pyargs.
    module = pytest.Module.from_parent(session, path=Path(test_reference.__file__),
                                       nodeid="pytest_aiotbench/suite/test_reference.py")
    added = list(session.genitems(module))
    items.extend(added)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and added:
        reporter.write_line(f"aiotbench: no test module here runs workloads, so the reference "
                            f"matrix runs (pytest_aiotbench.suite: {len(added)} workload "
                            "item(s)); import test_workload in a test module to run your own")


def _workload_param(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    params = {} if callspec is None else callspec.params
    return next((params[name] for name in MATRIX_FIXTURES if name in params), None)


@pytest.fixture
def aiot_workload(request: pytest.FixtureRequest, benchmark) -> Workload:
    """One (network, framework, device) workload of the matrix. It takes pytest-benchmark's
    ``benchmark`` fixture to hand it the device-side samples (so ``--benchmark-only`` keeps
    workload items and ``--benchmark-skip`` skips them, as for any benchmark)."""
    session = request.config.stash[SESSION_KEY]
    return Workload(session, request.param, request.node.nodeid, benchmark)


@pytest.fixture
def aiot_measured(request: pytest.FixtureRequest) -> WorkloadResult:
    """One workload's measured result, for a test of your own to assert on (a latency budget,
    an accuracy floor). ``@pytest.mark.aiot(network=..., framework=..., variant=...,
    device=...)`` picks the workloads (fnmatch patterns); each is measured once a session,
    shared with its workload item."""
    session = request.config.stash[SESSION_KEY]
    spec = request.param
    return outcome(session.measured(spec, request.node.nodeid), spec.id)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    session = terminalreporter.config.stash.get(SESSION_KEY, None)
    if session is None or not session.results:
        return
    terminalreporter.write_sep("=", "aiotbench: VIPS / VOPS")
    for line in session.summary_lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    bench = session.config.stash.get(SESSION_KEY, None)
    if bench is None:
        return
    summary = bench.finish_gate()
    if summary is not None and summary.failed_devices and session.exitstatus == pytest.ExitCode.OK:
        # A device's VIPS/VOPS fell beyond its limit: no item owns that, the session fails.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if bench.settings.json_path and bench.results:
        bench.write_json()


def pytest_unconfigure(config: pytest.Config) -> None:
    bench = config.stash.get(SESSION_KEY, None)
    if bench is not None:
        bench.close()
