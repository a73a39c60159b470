"""The plugin as a user runs it: pytest in a fresh process, real exports, real runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REFERENCE_MODULE, REPO, TINY_CNN_MODULE

from pytest_aiotbench import frameworks

ALL_FRAMEWORKS = ["tflite", "onnxruntime", "pytorch-mobile", "executorch"]


def vips_from_rows(workloads: list[dict]) -> tuple[float, float]:
    scored = [w for w in workloads if w["status"] == "passed"]
    vips = sum(w["accuracy"] / w["stats"]["median_s"] for w in scored)
    vops = sum(w["accuracy"] * w["macs"] / 1e6 / w["stats"]["median_s"] for w in scored)
    return vips, vops


def test_custom_network_in_a_test_module_runs_on_every_framework(pytester, run_plugin):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, document = run_plugin("-v")
    result.assert_outcomes(passed=4)
    for framework in ALL_FRAMEWORKS:
        result.stdout.fnmatch_lines([f"*test_workload?tiny_cnn-{framework}-local? PASSED*"])
    result.stdout.fnmatch_lines(["*aiotbench: VIPS / VOPS*", "device local*",
                                 "*tiny_cnn*", "VIPS *VOPS*", "ranking by VIPS:*",
                                 "*1. local*"])
    device = document["devices"]["local"]
    assert len(device["workloads"]) == 4
    assert {w["framework"] for w in device["workloads"]} == set(ALL_FRAMEWORKS)
    for workload in device["workloads"]:
        assert workload["accuracy_source"] == "top-1 agreement with fp32 reference"
        assert len(workload["samples_s"]) == workload["stats"]["n"] >= 5
        assert workload["artifact"]["sha256"] and workload["macs"] > 0
    vips, vops = vips_from_rows(device["workloads"])
    assert device["vips"] == pytest.approx(vips) and device["vops"] == pytest.approx(vops)
    assert device["facts"]["cores"] >= 1
    assert document["environment"]["packages"]["torch"].startswith("2.13.0")
    assert document["ranking"] == ["local"]


def test_the_conftest_example_runs_as_shipped(pytester, run_plugin):
    example = REPO / "conftest_examples" / "custom_network"
    for source in example.iterdir():
        if source.is_file():
            shutil.copy(source, pytester.path / source.name)
    result, document = run_plugin("--aiot-framework=onnxruntime,tflite")
    result.assert_outcomes(passed=2)
    networks = {w["network"] for w in document["devices"]["local"]["workloads"]}
    assert networks == {"edgenet"}


def test_filters_select_items_and_ids_read_network_framework_device(pytester, run_plugin):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE)
    result, _ = run_plugin("--collect-only", "-q", "--aiot-framework=onnxruntime",
                           json_report=False)
    result.stdout.fnmatch_lines(["test_tiny.py::test_workload[tiny_cnn-onnxruntime-local]",
                                 "1 test collected*"])


def test_a_module_without_networks_gets_the_reference_six(pytester, run_plugin):
    pytester.makepyfile(test_suite="from pytest_aiotbench import test_workload  # noqa\n")
    result, _ = run_plugin("--collect-only", "-q", json_report=False)
    result.stdout.fnmatch_lines(["*resnet50-tflite-local*", "*inception_v3-executorch-local*",
                                 "*mnasnet1_0-pytorch-mobile-local*", "24 tests collected*"])


# Each option's own errors are checked in-process (test_settings.py); here, that any of them,
# and what only the running plugin knows (networks registered by test modules, the devices
# attached, argparse's own), is a usage error before anything runs.
@pytest.mark.parametrize(("args", "message"), [
    (["--aiot-network=resnet5O"], "*unknown network 'resnet5O'*known networks: *resnet50*"),
    (["--aiot-device=pixel9"], "*unknown device 'pixel9'*attached: local*"),
    (["--aiot-rel-ci=0"], "*--aiot-rel-ci=*out of range*"),
    (["--aiot-netwrok=resnet50"], "*unrecognized arguments: --aiot-netwrok*"),
])
def test_bad_options_are_usage_errors_that_say_what_to_do(pytester, run_plugin, args, message):
    pytester.makepyfile(test_suite=REFERENCE_MODULE)  # registers nothing: runs in-process
    result, _ = run_plugin(*args, json_report=False, in_process=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


BROKEN_MODULE = TINY_CNN_MODULE + '''

@register_network(input_shape=(1, 3, 32, 32), num_classes=10)
def broken_builder():
    raise RuntimeError("weights file is corrupt")


class Noisy(torch.nn.Module):
    """Adds fresh noise on every call: no deployed copy can match the reference."""

    def forward(self, x):
        return x.mean(dim=(2, 3)) + torch.randn(1, 3)


@register_network(input_shape=(1, 3, 32, 32), num_classes=3)
def noisy():
    return Noisy()
'''

FAILING_FRAMEWORK_CONFTEST = '''
from pytest_aiotbench import register_framework
from pytest_aiotbench.frameworks import Framework


@register_framework
class Unexportable(Framework):
    name = "unexportable"
    suffix = ".bin"

    def export(self, model, example, destination):
        raise NotImplementedError("this exporter cannot handle AdaptiveAvgPool2d")
'''


def test_failures_stay_in_their_own_items_and_everything_else_is_reported(pytester,
                                                                          run_plugin):
    pytester.makepyfile(test_mixed=BROKEN_MODULE)
    pytester.makeconftest(FAILING_FRAMEWORK_CONFTEST)
    result, document = run_plugin("-v", "--aiot-framework=onnxruntime,tflite,unexportable")
    # tiny_cnn: 2 pass, its unexportable item errors in setup; broken_builder: 3 errors in
    # setup (its network stage); noisy: invalid (failed) on the 2 real frameworks, an error
    # of its export on the third. A failing stage is an error, a failed check a failure.
    result.assert_outcomes(passed=2, failed=2, errors=5)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_workload?broken_builder-onnxruntime-local?*",
        "*network stage: building network 'broken_builder' failed: "
        "RuntimeError: weights file is corrupt*"])
    result.stdout.fnmatch_lines([
        "*ERROR at setup of test_workload?tiny_cnn-unexportable-local?*",
        "*export stage: exporting 'tiny_cnn' to unexportable failed: NotImplementedError*"])
    result.stdout.fnmatch_lines(["*FAILED*noisy-onnxruntime-local*"])
    result.stdout.fnmatch_lines(["*noisy-onnxruntime-local*outputs diverge from the fp32 "
                                 "reference: max relative error*tolerance*"])
    workloads = document["devices"]["local"]["workloads"]
    assert len(workloads) == 9
    statuses = {(w["network"], w["framework"]): w["status"] for w in workloads}
    assert statuses[("tiny_cnn", "onnxruntime")] == "passed"
    assert statuses[("noisy", "tflite")] == "invalid"
    assert statuses[("broken_builder", "tflite")] == "failed"
    vips, _ = vips_from_rows(workloads)
    assert document["devices"]["local"]["vips"] == pytest.approx(vips)
    result.stdout.fnmatch_lines(["*not scored: broken_builder-onnxruntime: failed*"])


def test_an_interrupted_session_keeps_what_it_measured(pytester, run_plugin):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE + '''

def test_zz_interrupt():
    raise KeyboardInterrupt
''')
    result, document = run_plugin("--aiot-framework=onnxruntime,tflite")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert len(document["devices"]["local"]["workloads"]) == 2


def test_builtin_frameworks_come_in_the_original_suites_order():
    assert frameworks.names()[:4] == ALL_FRAMEWORKS


def test_reference_suite_runs_one_reference_network_through_every_framework(pytester,
                                                                              run_plugin):
    """The shipped suite module, as `tox -e bench` runs it, on the lightest of the six."""
    result, document = run_plugin("--pyargs", "pytest_aiotbench.suite",
                                  "--aiot-network=squeezenet1_1")
    result.assert_outcomes(passed=4)
    workloads = document["devices"]["local"]["workloads"]
    assert {w["framework"] for w in workloads} == set(ALL_FRAMEWORKS)
    assert all(abs(w["macs"] / 0.35e9 - 1) < 0.02 for w in workloads)
    assert Path(workloads[0]["artifact"]["path"]).is_file()


def test_the_first_command_in_an_empty_folder_runs_the_reference_matrix(pytester, run_plugin):
    result, document = run_plugin("--aiot-device=local", "--aiot-network=squeezenet1_1",
                                  "--aiot-framework=onnxruntime")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "aiotbench: no test module here runs workloads, so the reference matrix runs "
        "(pytest_aiotbench.suite: 1 workload item(s))*",
        "*aiotbench: VIPS / VOPS*", "squeezenet1_1  onnxruntime*"])
    (workload,) = document["devices"]["local"]["workloads"]
    assert workload["nodeid"] == ("pytest_aiotbench/suite/test_reference.py::"
                                  "test_workload[squeezenet1_1-onnxruntime-local]")
    # Without any --aiot-* option pytest is left alone: nothing to run is nothing to run.
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert plain.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_every_workload_item_carries_the_aiot_marker(pytester, run_plugin):
    pytester.makepyfile(test_tiny=TINY_CNN_MODULE, test_other="def test_other():\n    pass\n")
    result, _ = run_plugin("--collect-only", "-q", "-m", "aiot", json_report=False)
    result.stdout.fnmatch_lines(["*tiny_cnn-tflite-local*", "4/5 tests collected (1 deselected)*"])
    result, _ = run_plugin("--collect-only", "-q", "-m", "not aiot", json_report=False)
    result.stdout.fnmatch_lines(["test_other.py::test_other", "1/5 tests collected*"])



def test_a_module_that_fails_to_import_runs_no_workload_in_its_place(pytester, run_plugin):
    """The module that would run workloads cannot be imported: pytest reports the collection
    error, and the reference matrix never stands in, even where pytest goes on."""
    pytester.makepyfile(test_mine="raise RuntimeError('my module is broken')\n")
    for extra in ([], ["--continue-on-collection-errors"]):
        result, document = run_plugin("--aiot-network=squeezenet1_1",
                                      "--aiot-framework=onnxruntime", *extra, in_process=True)
        result.stdout.fnmatch_lines(["*ERROR collecting test_mine.py*",
                                     "*RuntimeError: my module is broken*"])
        assert "reference matrix" not in result.stdout.str()
        assert result.ret == pytest.ExitCode.INTERRUPTED if not extra else result.ret != 0
        assert not (document or {}).get("devices")


def test_an_unknown_aiot_marker_key_is_one_line_naming_the_known_keys(pytester, run_plugin):
    pytester.makepyfile(test_mine=TINY_CNN_MODULE + """

import pytest


@pytest.mark.aiot(netwrok="tiny_cnn")
def test_typo(aiot_measured):
    pass
""")
    result, _ = run_plugin("--collect-only", json_report=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: test_mine.py::*: @pytest.mark.aiot takes network=, "
                                 "*patterns, not netwrok"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()

BUDGET_MODULE = TINY_CNN_MODULE + '''
import pytest


@pytest.mark.aiot(network="tiny_cnn", framework="onnxruntime")
def test_tiny_cnn_p90_stays_within_a_second(aiot_measured):
    assert aiot_measured.stats.p90_s < 1.0


@pytest.mark.aiot(framework=["tflite", "onnx*"])
def test_an_impossible_budget(aiot_measured):
    assert aiot_measured.stats.p90_s < 1e-9, f"p90 {aiot_measured.stats.p90_s * 1e3:.3f} ms"
'''


def test_a_budget_test_asserts_on_the_measured_result(pytester, run_plugin):
    pytester.makepyfile(test_budget=BUDGET_MODULE)
    result, document = run_plugin("-v", "--aiot-framework=onnxruntime,tflite")
    # 2 workload items, 1 budget kept, 2 budgets broken (the marker picked both frameworks).
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "*test_tiny_cnn_p90_stays_within_a_second?tiny_cnn-onnxruntime-local? PASSED*",
        "*test_an_impossible_budget?tiny_cnn-tflite-local? FAILED*"], consecutive=False)
    result.stdout.fnmatch_lines(["*AssertionError: p90 *ms*"])
    # Each workload measured once, shared by its item and the budget tests.
    assert len(document["devices"]["local"]["workloads"]) == 2
    result, _ = run_plugin("--collect-only", "-q", "-m", "aiot", json_report=False)
    result.stdout.fnmatch_lines(["7 tests collected*"])  # 4 workloads + 3 budget items
