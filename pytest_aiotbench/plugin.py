"""pytest hooks: options, items, the summary. Thin: the work is elsewhere (settings.py,
matrix.py, fixtures.py, session.py, farm.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_aiotbench import farm, matrix, settings
from pytest_aiotbench.devices import DeviceError, UnknownDeviceError, select_devices
from pytest_aiotbench.fixtures import (  # noqa: F401  (the staged fixtures, registered here)
    aiot_artifact,
    aiot_deployed,
    aiot_device,
    aiot_measured,
    aiot_network,
    aiot_workload,
)
from pytest_aiotbench.gate import BaselineArtifacts, BaselineError, ReleaseGate, load_baseline
from pytest_aiotbench.images import DatasetError
from pytest_aiotbench.lab import LAB_KEY, Lab
from pytest_aiotbench.report import benchmark_records
from pytest_aiotbench.session import SESSION_KEY, BenchSession, progress_writer
from pytest_aiotbench.stages import StageFailed, StageSkipped

#: A usage error met while collecting (devices, an aiot marker): one line once it is over.
USAGE_ERROR_KEY = pytest.StashKey[str]()
SETTINGS_KEY = pytest.StashKey[settings.Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Every option of the option table, also as an ini key (the command line wins)."""
    group = parser.getgroup("aiotbench", "on-device inference benchmark (AIoTBench VIPS/VOPS)")
    for field, entry in settings.options():
        text = settings.help_text(field, entry).replace("%", "%%")  # argparse %-formats help
        if entry.flag:
            group.addoption(f"--aiot-{entry.name}", dest=entry.dest, action="store_true",
                            default=None, help=text)
        else:
            group.addoption(f"--aiot-{entry.name}", dest=entry.dest, metavar=entry.metavar,
                            help=text)
        parser.addini(entry.dest, f"default of --aiot-{entry.name}: {entry.help}",
                      type="bool" if entry.flag else "string")


def _given(config: pytest.Config) -> dict[str, Any]:
    """Each option's value: the command line's, else the ini file's, else None."""
    values: dict[str, Any] = {}
    for _, entry in settings.options():
        value = config.getoption(entry.dest)
        if value is None:
            value = config.getini(entry.dest)
            value = None if value in ("", None, False) else value
        values[entry.name] = value
    return values


def _settings(config: pytest.Config) -> settings.Settings:
    """The run's settings, parsed once (xdist asks for workers before pytest_configure)."""
    if SETTINGS_KEY not in config.stash:
        try:
            config.stash[SETTINGS_KEY] = settings.parse(_given(config), Path(config.rootpath))
        except settings.SettingsError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[SETTINGS_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "aiot: an AIoTBench workload item; on a test of your "
                            "own, network=, implementation=, framework=, variant=, device= "
                            "patterns pick the workloads its aiot_measured result comes from")
    parsed = _settings(config)
    try:
        gate = (ReleaseGate(load_baseline(parsed.baseline), parsed.fail_on, parsed.confirm,
                            artifacts=BaselineArtifacts(parsed.cache_dir,
                                                        parsed.baseline_artifacts),
                            ab=parsed.ab, protocol=parsed.protocol,
                            confidence=parsed.confidence)
                if parsed.baseline else None)
    except BaselineError as exc:
        raise pytest.UsageError(str(exc)) from None
    progress = progress_writer(config)
    session = BenchSession(parsed, progress, gate, forward=farm.is_worker(config))
    config.stash[SESSION_KEY] = session
    if farm.is_controller(config):  # it runs no item: no lab, the workers' results
        config.pluginmanager.register(farm.FarmController(session, config), "aiotbench-farm")
        return
    lab = Lab(parsed, progress, gate.plan if gate is not None else None)
    config.stash[LAB_KEY] = lab
    session.local_facts = lab.facts
    if farm.is_worker(config):
        config.pluginmanager.register(farm.FarmWorker(session), "aiotbench-farm")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` on a farm: one xdist worker per device (adb is asked here, as only here
    the controller must know the devices)."""
    chosen = _settings(config)
    if chosen.devices == ("local",):
        return None
    try:
        selection = select_devices(chosen.devices, adb=chosen.adb)
    except (UnknownDeviceError, DeviceError) as exc:
        raise pytest.UsageError(f"--aiot-device: {exc}") from None
    for device in selection.devices:
        device.close()
    return max(1, len(selection.devices))


@pytest.hookimpl(wrapper=True)
def pytest_report_header(config: pytest.Config):
    """pytest-benchmark's header line says what applies to aiotbench items."""
    lines = yield
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return lines
    # One element: pytest prints the hooks' results in reverse, each element's lines in order.
    farm_line = farm.describe(config) if farm.is_controller(config) else None
    return [*benchmark_records.replace_header(session.settings, lines),
            session.header_lines(farm_line)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes any staged fixture runs over the matrix (matrix.py)."""
    if matrix.NETWORK_AXIS not in metafunc.fixturenames:
        return
    devices = (_device_aliases(metafunc.config) if matrix.DEVICE_AXIS in metafunc.fixturenames
               else [])
    try:
        matrix.parametrize(metafunc, metafunc.config.stash[SESSION_KEY].settings, devices)
    except matrix.MarkerError as exc:
        metafunc.config.stash.setdefault(USAGE_ERROR_KEY, str(exc))


def _device_aliases(config: pytest.Config) -> list[str]:
    """The devices, discovered on the first test that needs them. A failure is kept for
    the end of collection, where it is a usage error (here it would be a collection error
    of one module)."""
    try:
        return list(config.stash[LAB_KEY].devices)
    except (UnknownDeviceError, DeviceError) as exc:
        config.stash.setdefault(USAGE_ERROR_KEY, f"--aiot-device: {exc}")
        return []


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]):
    """Before -k/-m deselect (so they apply to added items too): the reference matrix
    when nothing else runs workloads, names checked, empty matrices deselected. After
    pytest has grouped the items: network-major order. A test module that failed to
    collect may be the one that runs workloads: then the reference matrix never stands in."""
    if USAGE_ERROR_KEY in config.stash:
        raise pytest.UsageError(config.stash[USAGE_ERROR_KEY])
    asked = any(str(arg).startswith("--aiot-") for arg in config.invocation_params.args)
    if asked and not session.testsfailed and not any(matrix.is_workload(i) for i in items):
        added = matrix.add_reference_matrix(session, items)
        if added:
            config.stash[SESSION_KEY].progress(
                f"aiotbench: no test module here runs workloads, so the reference matrix runs "
                f"(pytest_aiotbench.suite: {added} workload item(s)); import test_workload in "
                "a test module to run your own")
    matrix.check_networks(config.stash[SESSION_KEY].settings)
    matrix.drop_empty(config, items)
    yield
    matrix.network_major(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The devices found, and the labelled images scanned here once it is known that
    workloads will run: a bad folder is a usage error before anything is measured."""
    config = session.config
    lab = config.stash.get(LAB_KEY, None)
    if (lab is None or USAGE_ERROR_KEY in config.stash
            or not any(matrix.key_of(item) for item in session.items)):
        return
    dataset = None
    if not config.option.collectonly:
        try:
            dataset = lab.dataset
        except DatasetError as exc:
            raise pytest.UsageError(str(exc)) from None
    progress = config.stash[SESSION_KEY].progress
    progress(f"aiotbench: devices {', '.join(lab.devices)}")
    if lab.unavailable:
        progress("aiotbench: devices seen but not usable (not benchmarked): "
                 + ", ".join(lab.unavailable))
    if dataset is not None:
        progress(f"aiotbench: accuracy on {dataset.describe()}")
    if not config.option.collectonly and not farm.is_worker(config):
        lab.prefetch([key for item in session.items if (key := matrix.key_of(item))])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A workload whose device can have no runner skips before its fixtures export the
    artifact."""
    lab = item.config.stash.get(LAB_KEY, None)
    key = matrix.key_of(item)
    if lab is not None and key is not None:
        lab.check_runner(key)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A stage's failure or skip is recorded as the workload's result (the fixtures that
    raised it may be cached and never run again for the next item)."""
    report = yield
    session = item.config.stash.get(SESSION_KEY, None)
    error = call.excinfo.value if call.excinfo is not None else None
    key = matrix.key_of(item)
    if (session is not None and isinstance(error, (StageFailed, StageSkipped)) and key
            and not session.latest(key)):
        session.record_stage_error(key, error, item.nodeid)
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
    if bench is None or farm.is_worker(config):  # the controller reports the farm
        return
    summary = bench.finish_gate()
    if summary is not None and summary.failed_devices and session.exitstatus == pytest.ExitCode.OK:
        # A device's VIPS/VOPS fell beyond its limit: no item owns that, the session fails.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    bench.write_reports()


def pytest_unconfigure(config: pytest.Config) -> None:
    lab = config.stash.get(LAB_KEY, None)
    if lab is not None:
        lab.close()
