"""Device farms on pytest-xdist, with real adbd boards and the local host: one worker per
device, one table and one JSON on the controller, as many workloads as a serial run."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict

from conftest import REPO, TINY_CNN_MODULE
from test_adb_devices import ADB_FAST

FARM = REPO / "conftest_examples" / "device_farm"


def _workloads(document) -> set[tuple[str, str, str, str]]:
    return {(alias, row["network"], row["framework"], row["status"])
            for alias, device in document["devices"].items() for row in device["workloads"]}


def _workers_per_device(output: str) -> dict[str, set[str]]:
    """From -v lines like ``[gw1] [ 50%] PASSED test_tiny.py::test_workload[...-Farm_A]``."""
    workers = defaultdict(set)
    for worker, device in re.findall(r"\[(gw\d+)\].*test_workload\[[^\]]*-(\w+)\]", output):
        workers[device].add(worker)
    return workers


def test_a_farm_of_two_boards_and_the_host_reports_every_workload_once(
        pytester, run_plugin, adbd_factory, tmp_path):
    # Each board's /data/local/tmp is its own, as on phones (the default work folder).
    adbd_factory("Farm A", cores="0", private_folder="/data/local/tmp")
    adbd_factory("Farm B", cores="1", private_folder="/data/local/tmp")
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    args = ["-v", "--aiot-device=local,Farm_A,Farm_B", "--aiot-framework=onnxruntime,tflite",
            *ADB_FAST]
    serial, serial_document = run_plugin(*args)
    serial.assert_outcomes(passed=6)

    farm, document = run_plugin("-n", "2", *args)
    farm.assert_outcomes(passed=6)
    output = farm.stdout.str()
    farm.stdout.fnmatch_lines(["*device farm on 2 xdist workers, scheduled by device*"])
    # Each device's items on one worker; the table and the ranking printed once, with all.
    workers = _workers_per_device(output)
    assert set(workers) == {"local", "Farm_A", "Farm_B"}
    assert all(len(names) == 1 for names in workers.values()), workers
    assert output.count("ranking by VIPS:") == 1
    for alias in ("local", "Farm_A", "Farm_B"):
        assert f"device {alias} " in output
    # The JSON holds every workload, as the serial run's, with each worker's device facts.
    assert _workloads(document) == _workloads(serial_document)
    assert len(_workloads(document)) == 6
    assert document["devices"]["Farm_A"]["facts"]["cores"] == 1
    assert document["devices"]["Farm_B"]["facts"]["deploy"]["pushed"] >= 1
    assert document["environment"]["timing"]["artifacts_reused"] >= 2


def test_the_device_farm_example_runs_one_worker_per_device(pytester, run_plugin,
                                                           adbd_factory, tmp_path):
    adbd_factory("Farm C", cores="0", private_folder="/data/local/tmp")
    for name in ("pytest.ini", "test_farm.py"):
        shutil.copy(FARM / name, pytester.path / name)
    # As shipped: -n auto from the ini, one worker per named device.
    result, document = run_plugin("--aiot-device=local,Farm_C", "--aiot-network=squeezenet1_1",
                                  "--aiot-framework=onnxruntime", *ADB_FAST)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*device farm on 2 xdist workers, scheduled by device*",
                                 "*created: 2/2 workers*"])
    assert set(document["devices"]) == {"local", "Farm_C"}
