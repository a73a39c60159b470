"""Release gating as a CI pipeline uses it: pytest-benchmark records of the device-side
samples, the noise-aware --aiot-baseline gate, and bad input refused before anything runs.

The induced slowdown is real: a network whose width the environment sets (8 channels, or 128
for a slowdown of well over an order of magnitude), exported, deployed and timed like any
other. The limits used here are wide (+400%) so that a plain re-run on a busy shared machine
never trips them (a 16 us median was seen +157% beside another worker in CI), while the
slowdown clears them by far: 45-90x here (0.07-0.14 ms -> 6.3 ms). Width 64 (about 17x)
once passed the stored gate in CI, where a busy baseline run's interval reached over a fifth
of the slowed median.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FAST, NO_UNUSED_PLUGINS, REPO, TINY_CNN_MODULE

GATE_NET_MODULE = '''
import os

import torch
from pytest_aiotbench import register_network, test_workload  # noqa: F401

WIDTH = int(os.environ.get("AIOT_TEST_WIDTH", "8"))


@register_network(input_shape=(1, 3, 64, 64), num_classes=10)
def gate_net():
    """A small CNN whose width the environment sets: the tests' induced slowdown."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, WIDTH, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(WIDTH, WIDTH, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(WIDTH, 10))
'''

FRAMEWORKS = "--aiot-framework=onnxruntime,tflite"
#: The network's width as it ships, and slowed: every test exports these two widths only, into
#: the one cache.
PLAIN, SLOW = "8", "128"


@pytest.fixture
def gate_project(pytester, monkeypatch):
    """A project with the width-controlled network and a fixed one beside it."""
    pytester.makepyfile(test_gate=GATE_NET_MODULE, test_tiny=TINY_CNN_MODULE)
    monkeypatch.delenv("AIOT_TEST_WIDTH", raising=False)
    return pytester


def slowed(monkeypatch) -> None:
    monkeypatch.setenv("AIOT_TEST_WIDTH", SLOW)


def test_records_are_pytest_benchmarks_saved_listed_and_compared(gate_project, run_plugin,
                                                                 monkeypatch, tmp_path):
    storage = tmp_path / "storage"
    store = f"--benchmark-storage=file://{storage}"
    result, document = run_plugin(FRAMEWORKS, "--benchmark-autosave", store,
                                  f"--benchmark-json={tmp_path / 'bench.json'}",
                                  f"--benchmark-histogram={tmp_path / 'hist'}")
    result.assert_outcomes(passed=4)
    # The header says what applies to aiotbench items.
    result.stdout.fnmatch_lines(["benchmark: 5.3.1 (aiotbench items: the device's own samples, "
                                 "rigorous protocol*; tests calling the benchmark fixture: *"])
    saved = json.loads((tmp_path / "bench.json").read_text())
    records = {r["fullname"]: r for r in saved["benchmarks"]}
    ours = {w["nodeid"]: w for w in document["devices"]["local"]["workloads"]}
    assert set(records) == set(ours)
    for nodeid, record in records.items():
        workload = ours[nodeid]
        assert record["group"] == "local"
        # The workload's id: fp32 and the framework's own backend are left out.
        assert record["name"] == f"{workload['network']}-{workload['framework']}-local"
        # The device's own samples, every one, and pytest-benchmark's statistics of them.
        assert record["stats"]["data"] == workload["samples_s"]
        assert record["stats"]["median"] == pytest.approx(workload["stats"]["median_s"])
        info = record["extra_info"]
        assert info["accuracy"] == workload["accuracy"]
        assert info["accuracy_source"] == workload["accuracy_source"]
        assert info["runner"] == workload["runner"] == "python"
        assert info["artifact_sha256"] == workload["artifact"]["sha256"]
        assert info["gmacs"] == pytest.approx(workload["macs"] / 1e9)
        assert info["vips"] == pytest.approx(workload["vips"])
        assert info["device_facts"]["cores"] >= 1
        assert "runner" in record["options"]["timer"]
    shares = [r["extra_info"]["vips_share"] for r in records.values()]
    assert sum(shares) == pytest.approx(1.0)
    assert len(list((tmp_path / "hist").parent.glob("hist*.svg"))) == 1

    # A plain re-run against the saved one passes; the induced slowdown (width 8 -> 128: 190
    # times the work) fails. The limit is wide: a sub-millisecond median on a shared
    # two-core machine can double between two sessions (seen in CI).
    result, _ = run_plugin(FRAMEWORKS, "--benchmark-autosave", store, "--benchmark-compare",
                           "--benchmark-compare-fail=median:300%")
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    # The slowed run: pytest-benchmark's comparison fails it, and so does the aiotbench gate
    # that takes the saved pytest-benchmark run as its baseline.
    slowed(monkeypatch)
    saved_run = next(storage.rglob("0001_*.json"))
    result, document = run_plugin(FRAMEWORKS, store, "--benchmark-compare=0001",
                                  "--benchmark-compare-fail=median:300%",
                                  f"--aiot-baseline={saved_run}", "--aiot-fail-on=median:+400%")
    assert result.ret != 0
    regressed = (result.stdout.str() + result.stderr.str()).split("Performance has regressed")
    assert len(regressed) > 1, result.stdout.str()
    assert "gate_net-onnxruntime-local" in regressed[1]
    assert "tiny_cnn" not in regressed[1]
    result.stdout.fnmatch_lines([f"*against the baseline *{saved_run.name} (pytest-benchmark "
                                 "run*"])
    assert document["baseline_comparison"]["baseline"][0]["kind"] == "pytest-benchmark run"
    assert {w["workload"] for w in document["baseline_comparison"]["workloads"]
            if w["failed"]} == {"gate_net-onnxruntime", "gate_net-tflite"}

    # pytest-benchmark's own command lists and compares the saved runs.
    cli = [sys.executable, "-m", "pytest_benchmark", "--storage", f"file://{storage}"]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, check=True)
    assert len(listed.stdout.split()) == 2
    compared = subprocess.run([*cli, "compare", "0001", "0002", "--group-by=group"],
                              capture_output=True, text=True, check=True)
    assert "benchmark 'local'" in compared.stdout
    assert compared.stdout.count("gate_net-tflite-local") == 2


def test_benchmark_skip_skips_workload_items_and_benchmark_only_keeps_them(gate_project,
                                                                           run_plugin):
    result, document = run_plugin(FRAMEWORKS, "--benchmark-skip")
    result.assert_outcomes(skipped=4)
    assert document is None
    result, _ = run_plugin(FRAMEWORKS, "--benchmark-only", "--collect-only", "-q",
                           json_report=False)
    result.stdout.fnmatch_lines(["4 tests collected*"])


def test_gate_fails_exactly_the_slowed_items_with_their_figures(gate_project, run_plugin,
                                                                monkeypatch, tmp_path):
    """The slowed network fails, the fixed one passes, in each of the gate's modes: the
    slowed ONNX file is timed beside the baseline's own (paired); the baseline's TFLite file
    was not kept, so its stored figures are judged, and the table says why; the fixed
    network's files are unchanged (stored figures, their noise)."""
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    result, _ = run_plugin(FRAMEWORKS, f"--aiot-json={first}", json_report=False)
    result.assert_outcomes(passed=4)

    # Wide: the slowed network does 190 times the work, while a sub-millisecond median of
    # an unchanged one can more than double beside another test worker (seen in CI).
    limits = "--aiot-fail-on=median:+400%,accuracy:-0.5"
    # A plain re-run: nothing beyond the limits, whatever the noise. It becomes the baseline's
    # second run.
    result, document = run_plugin(FRAMEWORKS, f"--aiot-baseline={first}", limits)
    result.assert_outcomes(passed=4)
    assert not any(w["failed"] for w in document["baseline_comparison"]["workloads"])
    assert {w["gate"]["mode"] for w in document["devices"]["local"]["workloads"]} == {
        "unchanged"}
    second.write_text(json.dumps(document))
    # The runs' gate_net TFLite file was not kept (as from another machine's cache).
    for path in (first, second):
        kept = json.loads(path.read_text())
        lost = next(w for w in kept["devices"]["local"]["workloads"]
                    if (w["network"], w["framework"]) == ("gate_net", "tflite"))
        lost["artifact"]["sha256"] = "0" * 64
        path.write_text(json.dumps(kept))

    slowed(monkeypatch)
    html = tmp_path / "report.html"
    result, document = run_plugin(FRAMEWORKS, "-v", f"--aiot-baseline={first},{second}", limits,
                                  f"--aiot-html={html}")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*test_gate.py::test_workload?gate_net-onnxruntime-local? FAILED*",
        "*test_tiny.py::test_workload?tiny_cnn-onnxruntime-local? PASSED*"], consecutive=False)
    output = result.stdout.str()
    assert "gate_net-onnxruntime on local regressed against the baseline 2 runs" in output
    assert "exceeds +400%" in output and "also changed: artifact" in output
    # Each regression was re-timed once before it failed, and the re-timing is the result.
    assert output.count("looks regressed (median +") == 2
    assert "confirmed: 2 timings all regressed (median +" in output
    comparison = document["baseline_comparison"]
    failed = {w["workload"] for w in comparison["workloads"] if w["failed"]}
    assert failed == {"gate_net-onnxruntime", "gate_net-tflite"}
    rows = {(w["network"], w["framework"]): w for w in document["devices"]["local"]["workloads"]}

    # Paired: the ratio of the rounds, its interval, the rounds themselves.
    gate = rows["gate_net", "onnxruntime"]["gate"]
    assert (gate["mode"], gate["verdict"], gate["limit"]) == ("paired", "regressed",
                                                               "median:+400%")
    # The paired rule: the ratio beyond the limit, its interval excluding "no change" (the
    # interval's low end beyond the limit too was asked once, and 3 noisy rounds missed it).
    assert gate["ratio"] > 5 and 1 < gate["ci_low"] <= gate["ratio"] <= gate["ci_high"]
    paired = rows["gate_net", "onnxruntime"]["paired"]
    assert gate["rounds"] == len(paired["rounds"]) >= 2
    assert [r["order"] for r in paired["rounds"][:2]] == ["baseline_first", "current_first"]
    assert "second.json) (paired):" in output
    result.stdout.fnmatch_lines([
        "*gate_net-onnxruntime *paired *median *beyond: ratio * rounds *REGRESSED*",
        "*gate_net-tflite: stored figures: the baseline's artifact (sha256 000000000000) is "
        "not in the artifact cache *--aiot-baseline-artifacts=DIR"], consecutive=False)
    for framework in ("onnxruntime", "tflite"):
        assert rows["tiny_cnn", framework]["gate"]["mode"] == "unchanged"
    page = html.read_text()
    assert "<td>paired (the baseline&#x27;s artifact " in page
    assert "<td>stored (the baseline&#x27;s artifact (sha256 000000000000) is not in " in page

    # Stored: beyond the noise, the baseline's interval spanning both runs' intervals; "now"
    # is this run's median.
    stored = rows["gate_net", "tflite"]
    assert (stored["gate"]["mode"], stored["gate"]["verdict"]) == ("stored", "regressed")
    assert stored["gate"]["rounds"] is None and stored["paired"] is None
    assert "beyond (at least +" in output
    median = next(c for w in comparison["workloads"] if w["workload"] == "gate_net-tflite"
                  for c in w["changes"] if c["metric"] == "median")
    assert median["least_change"] > 1.0 and median["beyond_noise"]
    runs = [json.loads(path.read_text())["devices"]["local"]["workloads"]
            for path in (first, second)]
    stats = [next(w["stats"] for w in run if w["network"] == "gate_net"
                  and w["framework"] == "tflite") for run in runs]
    assert median["baseline"][1] == min(s["median_ci_low_s"] for s in stats)
    assert median["baseline"][2] == max(s["median_ci_high_s"] for s in stats)
    assert median["now"][0] == stored["stats"]["median_s"]

    # Other weights (another artifact) at the same speed: paired, and it passes.
    monkeypatch.delenv("AIOT_TEST_WIDTH")
    result, document = run_plugin("--aiot-framework=onnxruntime", "--aiot-network=gate_net",
                                  "--aiot-seed=1", f"--aiot-baseline={first},{second}",
                                  "--aiot-fail-on=median:+100%")
    result.assert_outcomes(passed=1)
    (row,) = document["devices"]["local"]["workloads"]
    assert row["gate"]["mode"] == "paired" and 0.5 < row["gate"]["ratio"] < 2


def test_a_device_vips_drop_fails_the_session_and_new_and_missing_are_listed(
        gate_project, run_plugin, monkeypatch, tmp_path):
    """The device total is over the workloads in both runs: the slowed network alone there
    (VIPS sums images per second, so the fastest workloads would dominate it), while the
    tiny network is timed on another framework each time: one new, one missing, neither
    gated."""
    both = ["--aiot-framework=onnxruntime,tflite", "--aiot-network=gate_net,tiny_cnn"]
    baseline = tmp_path / "baseline.json"
    run_plugin(*both, "-k", "not tiny_cnn-tflite", f"--aiot-json={baseline}", json_report=False)
    slowed(monkeypatch)
    result, document = run_plugin(*both, "-k", "not tiny_cnn-onnxruntime",
                                  f"--aiot-baseline={baseline}", "--aiot-fail-on=vips:-50%")
    # No item owns a device's total: the items pass, the session fails.
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*device total (2 workloads in both)*",
        "REGRESSED: device local: vips * -> * (-*%; beyond (at least -*%) the noise) exceeds "
        "-50%",
        "new (not in the baseline, not gated): tiny_cnn-tflite on local",
        "missing (in the baseline, not timed this run): tiny_cnn-onnxruntime on local"],
        consecutive=False)
    comparison = document["baseline_comparison"]
    assert comparison["devices"][0]["failed"]
    assert comparison["new"] == [{"device": "local", "workload": "tiny_cnn-tflite"}]


OTHER_BENCHMARK = {"machine_info": {}, "commit_info": {}, "version": "5.3.1",
                   "benchmarks": [{"name": "test_sort", "fullname": "t.py::test_sort",
                                   "extra_info": {}, "stats": {"median": 1.0}}]}


def with_file(option: str, name: str, text: str):
    """Arguments that name a file this test writes first."""
    def make(path: Path) -> list[str]:
        (path / name).write_text(text)
        return [f"{option}={path / name}"]
    return make


@pytest.mark.parametrize(("make_args", "message"), [
    (lambda p: ["--aiot-baseline=nothing-here.json"],
     "*--aiot-baseline=nothing-here.json: no such file; give the --aiot-json file*"),
    (with_file("--aiot-baseline", "cut.json", '{"schema": "pytest-aio'),
     "*--aiot-baseline=*cut.json is not valid JSON (corrupt or cut short?)*"),
    (with_file("--aiot-baseline", "old.json", json.dumps({"schema": "pytest-aiotbench/0"})),
     "*old.json: has schema 'pytest-aiotbench/0'; this version of pytest-aiotbench reads "
     "'pytest-aiotbench/1'*"),
    (with_file("--aiot-baseline", "other.json", json.dumps({"rows": []})),
     "*other.json is neither an aiotbench results file*nor a pytest-benchmark run*"),
    (with_file("--aiot-baseline", "b.json", json.dumps(OTHER_BENCHMARK)),
     "*b.json is a pytest-benchmark run with no aiotbench workloads (1 other benchmarks)*"),
    (lambda p: [f"--aiot-baseline={p}"], "*--aiot-baseline=* is a folder with no .json runs*"),
    (lambda p: ["--aiot-fail-on=median:+10%"],
     "*--aiot-fail-on needs a run to compare with: give --aiot-baseline=PATH*"),
    (lambda p: ["--aiot-fail-on=meadian:+10%"],
     "*unknown metric 'meadian' in 'meadian:+10%'; did you mean 'median'?*"),
    (lambda p: ["--aiot-fail-on=median:-10%"],
     "*'median:-10%' would fail a release for being faster; a regression of median is +*"),
    (lambda p: ["--aiot-fail-on=top1:-5"], "*'top1:-5' is out of range: top1 is a fraction*"),
    (lambda p: ["--aiot-fail-on=median:+10"], "*'median:+10': give a unit, % of the baseline*"),
    (lambda p: ["--aiot-fail-on=vips:-150%"], "*'vips:-150%' is out of range*"),
    (lambda p: ["--aiot-fail-on=median+10%"], "*unknown metric 'median+10%'*"),
    (lambda p: [f"--aiot-json={p}"], "*--aiot-json=* is a folder; give a file path*"),
    (lambda p: ["--aiot-json=/proc/aiotbench/results.json"],
     "*--aiot-json=/proc/aiotbench/results.json: cannot write in /proc*choose a writable*"),
    (with_file("--aiot-cache", "cache", "x"),
     "*--aiot-cache=*cache is a file, not a folder*"),
    (lambda p: ["--aiot-min-time=5", "--aiot-max-time=1"],
     "*--aiot-min-time=5 is above --aiot-max-time=1*"),
    (lambda p: ["--aiot-network="], "*--aiot-network='' names nothing; leave the option out "
                                    "for every registered network*"),
    (lambda p: ["--aiot-framework=,"], "*--aiot-framework=',' names nothing*"),
    (lambda p: ["--aiot-ab=on"], "*--aiot-ab='on': choose one of auto, off*"),
    (lambda p: [f"--aiot-baseline-artifacts={p}"],
     "*--aiot-baseline-artifacts holds a baseline's artifacts: give the baseline too*"),
    (lambda p: ["--aiot-baseline-artifacts=/no/such/folder"],
     "*--aiot-baseline-artifacts=/no/such/folder: does not exist; give the folder that holds*"),
], ids=["baseline-missing", "baseline-corrupt", "baseline-other-schema", "baseline-unknown",
        "baseline-other-benchmarks", "baseline-folder", "fail-on-without-baseline",
        "fail-on-misspelled", "fail-on-wrong-sign", "fail-on-out-of-range", "fail-on-no-unit",
        "fail-on-vips-range", "fail-on-no-colon", "json-folder", "json-unwritable",
        "cache-file", "min-above-max", "empty-network", "empty-framework", "ab-unknown",
        "baseline-artifacts-alone", "baseline-artifacts-missing"])
def test_bad_gate_input_is_a_usage_error_before_anything_runs(gate_project, run_plugin,
                                                              make_args, message):
    report = gate_project.path / "aiot.json"
    result, _ = run_plugin(*make_args(gate_project.path), json_report=False, in_process=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines([message])
    assert "collected" not in result.stdout.str()
    assert not report.exists()
    assert not list(gate_project.path.glob(".aiotbench-probe-*"))


def test_json_is_written_through_a_temporary_file_beside_it(gate_project, run_plugin,
                                                            tmp_path):
    target = tmp_path / "out" / "deep" / "results.json"
    result, _ = run_plugin("--aiot-framework=tflite", "--aiot-network=tiny_cnn",
                           f"--aiot-json={target}", json_report=False)
    result.assert_outcomes(passed=1)
    assert json.loads(target.read_text())["devices"]["local"]["workloads"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert os.listdir(target.parent.parent) == ["deep"]


EXAMPLE = REPO / "conftest_examples" / "release_gate"
WORKFLOW = ".github/workflows/aiotbench-release-gate.yml"


def test_the_release_gate_example_runs_its_workflow_steps(pytester, artifact_cache, tmp_path):
    """The example as shipped, its workflow's own shell steps run in order for pushes and
    pull requests (the ``uses:`` steps are GitHub's: checkout, cache, upload)."""
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    pytester.makepyfile(test_gate=GATE_NET_MODULE)
    steps = yaml.safe_load((pytester.path / WORKFLOW).read_text())["jobs"]["gate"]["steps"]
    commands = [step["run"] for step in steps if "release_gate.sh" in step.get("run", "")]
    assert commands == ["bash release_gate.sh check", "bash release_gate.sh accept"]
    # The test's own choices: this machine, the test network, short timing, and limits wide
    # enough for a busy shared machine (the ini's are for dedicated devices; the script's
    # own -o aiot_fail_on= still turns the gate off where there is no baseline).
    options = [*FAST, f"--aiot-cache={artifact_cache}", "--aiot-device=local",
               "--aiot-network=gate_net", "-o", "aiot_fail_on=median:+400%,accuracy:-0.01"]
    environment = {**os.environ, "PYTEST_ADDOPTS": " ".join(options),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def job(event: str, width: str, **extra_env: str) -> tuple[bool, str]:
        env = {**environment, "AIOT_TEST_WIDTH": width, **extra_env}
        passed, output = True, ""
        for step in steps:
            if "run" not in step or "pip install" in step["run"]:
                continue  # installing is tox's job here
            if not _step_runs(step.get("if"), event, passed):
                continue
            done = subprocess.run(["bash", "-c", step["run"]], cwd=pytester.path, env=env,
                                  capture_output=True, text=True, timeout=1200)
            output += done.stdout + done.stderr
            passed = passed and done.returncode == 0
        return passed, output

    passed, output = job("push", PLAIN)
    assert passed, output
    assert "no accepted baseline in .aiotbench/baseline yet: measuring, not gating" in output
    assert "baseline runs: 1, artifacts kept: 2" in output
    passed, output = job("push", PLAIN)
    assert passed, output
    assert "against the baseline .aiotbench/baseline/" in output
    assert "baseline runs: 2" in output
    passed, output = job("pull_request", PLAIN)
    assert passed, output
    assert "against the baseline 2 runs" in output
    passed, output = job("pull_request", SLOW)
    assert not passed
    # The changed artifacts were timed beside the accepted run's own, kept with it.
    assert "gate_net-onnxruntime on local regressed against the baseline 2 runs" in output
    assert "gate_net-tflite on local regressed" in output and "(paired):" in output
    assert "gate_net-tflite: paired with the baseline's artifact .aiotbench/baseline/" \
        "artifacts/" in output
    # A pull request is never accepted; results and pytest-benchmark's history are kept.
    assert len(list((pytester.path / ".aiotbench" / "baseline").glob("*.json"))) == 2
    results = json.loads((pytester.path / ".aiotbench" / "results.json").read_text())
    assert {w["failed"] for w in results["baseline_comparison"]["workloads"]} == {True}
    assert len(list((pytester.path / ".aiotbench" / "history").rglob("0*.json"))) == 4

    # Only the newest runs stay accepted.
    passed, output = job("push", PLAIN, AIOTBENCH_BASELINE_KEEP="1")
    assert passed, output
    assert "baseline runs: 1, artifacts kept: 2" in output

    # Without PYTEST_ADDOPTS, the ini's own limits are the gate.
    done = subprocess.run([sys.executable, "-m", "pytest", *NO_UNUSED_PLUGINS, "--collect-only",
                           "--aiot-device=local", "--aiot-baseline=.aiotbench/baseline"],
                          cwd=pytester.path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTEST_ADDOPTS": ""})
    assert "; median:+10%, accuracy:-0.01, vips:-10%" in done.stdout, done.stdout + done.stderr


def _step_runs(condition: str | None, event: str, passed: bool) -> bool:
    """The few GitHub expressions the example's steps use."""
    if condition is None:
        return passed
    if condition == "always()":
        return True
    if condition == "github.event_name == 'push'":
        return passed and event == "push"
    raise AssertionError(f"the test does not know the step condition {condition!r}")
