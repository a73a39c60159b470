"""pytest hooks: options, items, the fixture, the summary. Thin: the work is elsewhere."""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path

import pytest

from pytest_aiotbench import farm, frameworks, networks, settings
from pytest_aiotbench.devices import AdbOptions, DeviceError, UnknownDeviceError, select_devices
from pytest_aiotbench.fixtures import (  # noqa: F401  (the staged fixtures, registered here)
    aiot_artifact,
    aiot_deployed,
    aiot_device,
    aiot_measured,
    aiot_network,
    aiot_workload,
)
from pytest_aiotbench.gate import BaselineError, ReleaseGate, load_baseline
from pytest_aiotbench.gate.thresholds import METRICS
from pytest_aiotbench.images import DatasetError
from pytest_aiotbench.lab import LAB_KEY, Lab
from pytest_aiotbench.measure.result import FAILED, SKIPPED, WorkloadResult
from pytest_aiotbench.report import benchmark_records
from pytest_aiotbench.session import SESSION_KEY, BenchSession, RunFacts
from pytest_aiotbench.stages import (
    ArtifactChoice,
    NetworkChoice,
    StageFailed,
    StageSkipped,
    WorkloadSpec,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aiotbench", "on-device inference benchmark (AIoTBench VIPS/VOPS)")

    def add(name: str, help: str, **kwargs: object) -> None:
        dest = f"aiot_{name.replace('-', '_')}"
        group.addoption(f"--aiot-{name}", dest=dest, help=help, **kwargs)
        # Every option is also an ini key (aiot_runner = native under [pytest]); the command
        # line wins.
        parser.addini(dest, f"default of --aiot-{name}: {help}",
                      type="bool" if kwargs.get("action") == "store_true" else "string")

    add("device", "local (default), all (local + every adb device), adb (every adb device), "
        "or a comma list of device aliases/serials", metavar="DEVICES")
    add("network", "comma list of networks to run (default: all registered)", metavar="NAMES")
    add("implementation", "comma list of implementations to run the networks in: torch, "
        "keras (TensorFlow's own, keras.applications: resnet50, inception_v3, densenet121, "
        "mobilenet_v2) (default: each network in its first, torch for the reference six)",
        metavar="NAMES")
    add("framework", "comma list of frameworks: tflite, onnxruntime, pytorch-mobile, "
        "executorch (default: all)", metavar="NAMES")
    add("weights", "random (default) or pretrained (torchvision's or Keras's ImageNet weights)",
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
    add("html", "write a self-contained HTML report (charts, sortable tables; opens without "
        "network access) to this file; aiotbench-report makes the same page from saved "
        "--aiot-json files", metavar="PATH")
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
    config.addinivalue_line("markers", "aiot: an AIoTBench workload item; on a test of your "
                            "own, network=, implementation=, framework=, variant=, device= "
                            "patterns pick the workloads its aiot_measured result comes from")
    options = {name[len("aiot_"):]: _option_or_ini(config, name, value)
               for name, value in vars(config.option).items() if name.startswith("aiot_")}
    try:
        parsed = settings.parse(options, Path(config.rootpath))
        gate = None
        if parsed.baseline:
            gate = ReleaseGate(load_baseline(parsed.baseline), parsed.fail_on, parsed.confirm)
    except (settings.SettingsError, BaselineError) as exc:
        raise pytest.UsageError(str(exc)) from None
    progress = _progress_writer(config)
    session = BenchSession(parsed, progress, gate, forward=farm.is_worker(config))
    config.stash[SESSION_KEY] = session
    if farm.is_controller(config):  # it runs no item: no lab, the workers' results
        config.pluginmanager.register(farm.FarmController(session, config), "aiotbench-farm")
        return
    lab = Lab(parsed, progress)
    config.stash[LAB_KEY] = lab
    session.local_facts = lambda: _lab_facts(lab)
    if farm.is_worker(config):
        config.pluginmanager.register(farm.FarmWorker(session), "aiotbench-farm")


def _lab_facts(lab: Lab) -> RunFacts:
    return RunFacts(dict(lab.stages.device_facts), lab.deploy_stats(), lab.unavailable,
                    lab.stages.counts)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` on a farm: one xdist worker per device (adb is asked here, as only here
    the controller must know the devices)."""
    chosen = _option_or_ini(config, "aiot_device", config.option.aiot_device)
    if not chosen or chosen == "local":
        return None
    server = _option_or_ini(config, "aiot_adb_server", config.option.aiot_adb_server)
    try:
        selection = select_devices(str(chosen), adb=AdbOptions(server=server or None))
    except (UnknownDeviceError, DeviceError) as exc:
        raise pytest.UsageError(f"--aiot-device: {exc}") from None
    for device in selection.devices:
        device.close()
    return max(1, len(selection.devices))


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
    return [*benchmark_records.replace_header(session.settings, lines),
            _header(session, config)]


def _header(session: BenchSession, config: pytest.Config) -> list[str]:
    chosen = session.settings
    lines = [f"aiotbench: devices {chosen.device}; artifact cache {chosen.cache_dir}; "
             f"protocol {chosen.protocol}; runner {chosen.runner}"]
    if farm.is_controller(config):
        scheduling = ("by device" if config.option.dist in ("load", "worksteal", "loadgroup")
                      else f"--dist {config.option.dist}")
        lines.append(f"aiotbench: device farm on {config.option.numprocesses or 'the --tx'} "
                     f"xdist workers, scheduled {scheduling}: each device's items on one "
                     "worker, the local host timing alone; one table and one JSON here")
    for implementation in chosen.implementations:
        lacking = [name for name in chosen.networks or networks.names()
                   if implementation not in networks.implementations_of(name)]
        if lacking:
            lines.append(f"aiotbench: no {implementation} implementation of "
                         f"{', '.join(lacking)}: not run in {implementation}")
    if chosen.dataset is not None:
        lines.append(f"aiotbench: accuracy on the labelled images in {chosen.dataset}")
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


#: What ``@pytest.mark.aiot(...)`` may select a test's workloads by (fnmatch patterns).
SELECTORS = ("network", "implementation", "framework", "variant", "device")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes any staged fixture runs over the matrix: each stage's fixture is
    parametrized on its own axis with session scope, so pytest builds a network once, an
    artifact once per framework and variant, and groups the items that share them."""
    if "aiot_network" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.stash[SESSION_KEY].settings
    marker = metafunc.definition.get_closest_marker("aiot")
    patterns = _selector_patterns(marker, metafunc) if marker is not None else {}

    def matches(axis: str, value: str) -> bool:
        wanted = patterns.get(axis)
        return wanted is None or any(fnmatch.fnmatchcase(value, p) for p in wanted)

    def picked(axis: str, values: list[str]) -> list[str]:
        return [value for value in values if matches(axis, value)]

    network_choices = [
        NetworkChoice(card.name, card.implementation) for card in _networks_for(metafunc)
        if (not chosen.networks or card.name in chosen.networks)
        and networks.chosen(card, chosen.implementations)
        and matches("network", card.name) and matches("implementation", card.implementation)]
    choices = [ArtifactChoice(framework, variant)
               for framework in picked("framework", list(chosen.frameworks) or frameworks.names())
               for variant in picked("variant", list(chosen.variants))]
    # Every workload item carries the aiot marker: -m aiot selects them, -m "not aiot" the rest.
    metafunc.parametrize("aiot_network", [pytest.param(choice, id=choice.id,
                                                       marks=pytest.mark.aiot)
                                          for choice in network_choices],
                         indirect=True, scope="session")
    if "aiot_artifact" in metafunc.fixturenames:
        metafunc.parametrize("aiot_artifact", [pytest.param(choice, id=choice.id)
                                               for choice in choices],
                             indirect=True, scope="session")
    if "aiot_device" in metafunc.fixturenames:
        metafunc.parametrize("aiot_device", [
            pytest.param(alias, id=alias)
            for alias in picked("device", _device_aliases(metafunc.config))],
            indirect=True, scope="session")


def _device_aliases(config: pytest.Config) -> list[str]:
    """The devices, discovered on the first test that needs them. A failure is kept for
    the end of collection, where it is a usage error (here it would be a collection error
    of one module)."""
    try:
        return list(config.stash[LAB_KEY].devices)
    except (UnknownDeviceError, DeviceError) as exc:
        config.stash[DEVICE_ERROR_KEY] = f"--aiot-device: {exc}"
        return []


DEVICE_ERROR_KEY = pytest.StashKey[str]()


def _selector_patterns(marker: pytest.Mark, metafunc: pytest.Metafunc) -> dict[str, list[str]]:
    unknown = sorted(set(marker.kwargs) - set(SELECTORS))
    if unknown or marker.args:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.aiot takes "
                                f"{', '.join(f'{key}=' for key in SELECTORS)} patterns, not "
                                f"{', '.join(unknown) or repr(marker.args)}")
    return {key: [value] if isinstance(value, str) else list(value)
            for key, value in marker.kwargs.items()}


def spec_of(item: pytest.Item) -> WorkloadSpec | None:
    """The workload an item runs (None: not a workload item, or its matrix is empty)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    network, choice, device = (params.get(name) for name in
                               ("aiot_network", "aiot_artifact", "aiot_device"))
    if (not isinstance(network, NetworkChoice) or not isinstance(choice, ArtifactChoice)
            or not device):
        return None
    return WorkloadSpec(network.name, choice.framework, device, choice.variant,
                        network.implementation)


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


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]):
    """Before -k/-m deselect (so they apply to added items too): the reference matrix
    when nothing else runs workloads, names checked, empty matrices deselected. After
    pytest has grouped the items by their session-scoped parameters: within those places,
    network first, then artifact, then device, so that one network is built at a time
    (pytest keeps one value of a parametrized session fixture at a time)."""
    if _asked_on_command_line(config) and not any(_is_workload(item) for item in items):
        _add_reference_matrix(session, items)
    if DEVICE_ERROR_KEY in config.stash:
        raise pytest.UsageError(config.stash[DEVICE_ERROR_KEY])
    chosen = config.stash[SESSION_KEY].settings
    known = networks.names()
    unknown = [name for name in chosen.networks if name not in known]
    if unknown:
        raise pytest.UsageError(f"--aiot-network: unknown network {', '.join(map(repr, unknown))}; "
                                f"known networks: {', '.join(known)}")
    # A workload module whose networks the filters left out has an empty matrix: deselect
    # its placeholder item rather than report it skipped.
    empty = [item for item in items if _is_workload(item) and spec_of(item) is None]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [item for item in items if item not in empty]
    yield
    _network_major(items)


def _network_major(items: list[pytest.Item]) -> None:
    places = [index for index, item in enumerate(items) if spec_of(item) is not None]
    order: dict[str, int] = {}
    for index in places:
        order.setdefault(items[index].callspec.params["aiot_network"], len(order))
    ranked = sorted((items[index] for index in places), key=lambda item: (
        item.module.__name__, order[item.callspec.params["aiot_network"]],
        item.callspec.indices["aiot_artifact"], item.callspec.indices["aiot_device"]))
    for index, item in zip(places, ranked, strict=True):
        items[index] = item


def pytest_collection_finish(session: pytest.Session) -> None:
    """The devices found, and the labelled images scanned here once it is known that
    workloads will run: a bad folder is a usage error before anything is measured."""
    config = session.config
    lab = config.stash.get(LAB_KEY, None)
    if (lab is None or DEVICE_ERROR_KEY in config.stash
            or not any(spec_of(item) for item in session.items)):
        return
    dataset = None
    if not config.option.collectonly:
        try:
            dataset = lab.dataset
        except DatasetError as exc:
            raise pytest.UsageError(str(exc)) from None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    reporter.write_line(f"aiotbench: devices {', '.join(lab.devices)}")
    if lab.unavailable:
        reporter.write_line("aiotbench: devices seen but not usable (not benchmarked): "
                            + ", ".join(lab.unavailable))
    if dataset is not None:
        reporter.write_line(f"aiotbench: accuracy on {dataset.describe()}")


def _is_workload(item: pytest.Item) -> bool:
    """A workload item, or a test of one's own on the matrix (it takes a staged fixture)."""
    return "aiot_network" in getattr(item, "fixturenames", ())


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A stage's failure or skip is recorded as the workload's result (the fixtures that
    raised it may be cached and never run again for the next item)."""
    report = yield
    session = item.config.stash.get(SESSION_KEY, None)
    if session is None:
        return report
    error = call.excinfo.value if call.excinfo is not None else None
    spec = spec_of(item)
    if isinstance(error, (StageFailed, StageSkipped)) and spec and not session.latest(spec):
        framework = frameworks.get(spec.framework)
        session.record(WorkloadResult(
            device=spec.device, network=spec.network, framework=spec.framework,
            variant=spec.variant, implementation=spec.implementation,
            backend=framework.backend, nodeid=item.nodeid,
            status=SKIPPED if isinstance(error, StageSkipped) else FAILED,
            stage=error.stage, error=error.detail, protocol=session.settings.protocol))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    session = terminalreporter.config.stash.get(SESSION_KEY, None)
    if session is None or not session.results:
        return
    terminalreporter.write_sep("=", "aiotbench: VIPS / VOPS")
    for line in session.summary_lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    bench = config.stash.get(SESSION_KEY, None)
    if bench is None:
        return
    if farm.is_worker(config):
        return  # the controller reports the farm
    summary = bench.finish_gate()
    if summary is not None and summary.failed_devices and session.exitstatus == pytest.ExitCode.OK:
        # A device's VIPS/VOPS fell beyond its limit: no item owns that, the session fails.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    bench.write_reports()


def pytest_unconfigure(config: pytest.Config) -> None:
    lab = config.stash.get(LAB_KEY, None)
    if lab is not None:
        lab.close()
