"""The option table: parsing, defaults, errors, ini keys, help and the README (in-process,
milliseconds; `pytest --help` itself runs once in a fresh process)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from pytest_aiotbench import plugin, settings
from pytest_aiotbench.devices import AdbOptions
from pytest_aiotbench.runner.protocol import Timing
from pytest_aiotbench.settings import SettingsError, parse


def test_every_setting_with_an_option_is_in_the_table_once():
    names = [entry.name for _, entry in settings.options()]
    assert len(names) == len(set(names)) == 46
    # The fields without an option are none: every setting can be given.
    assert {field for field, _ in settings.options()} == {
        field.name for field in dataclasses.fields(settings.Settings)}


def test_defaults_come_from_the_table_and_from_the_layers_that_own_them(tmp_path):
    chosen = parse({}, tmp_path)
    assert chosen.target_rel_ci == Timing.target_rel_ci and chosen.warmup_s == Timing.warmup_s
    assert chosen.protocol == Timing.mode
    assert chosen.adb == AdbOptions()
    assert chosen.cache_dir == tmp_path / "models" / "cache"
    assert chosen.variants == ("fp32",) and chosen.frameworks == ()
    assert chosen.timing() == Timing()


def test_values_are_read_with_their_types(tmp_path):
    chosen = parse({"threads": "2", "rel-ci": "0.05", "variant": "fp32,int8,fp32",
                    "framework": " onnxruntime , tflite ", "keep-deployed": True,
                    "pin": "none", "images": "all", "json": str(tmp_path / "r.json"),
                    "fail-on": "median:+10%", "baseline": "a.json,b.json"}, tmp_path)
    assert chosen.threads == 2 and chosen.target_rel_ci == 0.05
    assert chosen.variants == ("fp32", "int8")  # duplicates dropped, order kept
    assert chosen.frameworks == ("onnxruntime", "tflite")
    assert chosen.keep_deployed and not chosen.adb.pin_big_cores and chosen.images is None
    assert chosen.json_path == tmp_path / "r.json"
    assert [t.text for t in chosen.fail_on] == ["median:+10%"]
    assert chosen.baseline == (Path("a.json"), Path("b.json"))
    # Option names with dashes and with underscores (argparse's dests) are both taken.
    assert parse({"min_samples": "3"}, tmp_path).min_samples == 3


@pytest.mark.parametrize(("given", "message"), [
    ({"rel-ci": "0"}, "--aiot-rel-ci='0': out of range, use 0.0001 to 1.0"),
    ({"threads": "many"}, "--aiot-threads='many': not a int"),
    ({"weights": "imagenet"}, "--aiot-weights='imagenet': choose one of random, pretrained"),
    ({"framework": "caffe2"}, "--aiot-framework='caffe2': unknown framework 'caffe2'; known "
                              "frameworks: tflite, onnxruntime, pytorch-mobile, executorch"),
    ({"variant": "int4"}, "--aiot-variant='int4': 'int4' is not one of them: choose from fp32, "
                          "fp16, dynamic-int8, int8"),
    ({"implementation": "jax"}, "--aiot-implementation='jax': 'jax' is not one of them"),
    ({"network": ""}, "--aiot-network='' names nothing; leave the option out for every "
                      "registered network"),
    ({"framework": ","}, "--aiot-framework=',' names nothing"),
    ({"adb-workdir": "tmp/w"}, "--aiot-adb-workdir='tmp/w': give an absolute path on the "
                               "device"),
    ({"local-python": "no-such-python3"}, "--aiot-local-python='no-such-python3': no such "
                                          "executable"),
    ({"min-time": "5", "max-time": "1"}, "--aiot-min-time=5 is above --aiot-max-time=1"),
    ({"protocol": "paper"}, "--aiot-protocol=paper times one pass over labelled images"),
    ({"fail-on": "median:+10%"}, "--aiot-fail-on needs a run to compare with: give "
                                 "--aiot-baseline=PATH"),
    ({"fail-on": "top1:-0.01", "baseline": "b.json"}, "--aiot-fail-on=top1: is measured only "
                                                      "on labelled images"),
    ({"fail-on": "meadian:+10%"}, "unknown metric 'meadian' in 'meadian:+10%'; did you mean "
                                  "'median'?"),
    ({"json": "/proc/aiotbench/results.json"}, "--aiot-json=/proc/aiotbench/results.json: "
                                               "cannot write in /proc"),
], ids=lambda value: value if isinstance(value, str) and len(value) < 24 else None)
def test_bad_values_name_the_option_and_what_to_do(tmp_path, given, message):
    with pytest.raises(SettingsError) as raised:
        parse(given, tmp_path)
    assert message in str(raised.value)


def test_paths_that_cannot_be_written_are_refused_before_anything_runs(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SettingsError, match=r"--aiot-cache=\S*a-file is a file, not a folder"):
        parse({"cache": str(tmp_path / "a-file")}, tmp_path)
    with pytest.raises(SettingsError, match=r"--aiot-json=\S+ is a folder; give a file path, "
                                            r"for example \S+results.json"):
        parse({"json": str(tmp_path)}, tmp_path)
    with pytest.raises(SettingsError, match=r"--aiot-html=\S*a-file/r.html: \S*a-file is a "
                                            r"file, so no folder can be made under it"):
        parse({"html": str(tmp_path / "a-file" / "r.html")}, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file"]  # nothing left


def test_ini_keys_give_defaults_and_the_command_line_wins(pytester):
    pytester.makeini("[pytest]\naiot_runner = native\naiot_keep_deployed = true\n"
                     "aiot_threads = 3\n")
    config = pytester.parseconfig("--aiot-threads=2")
    chosen = parse(plugin._given(config), pytester.path)
    assert chosen.runner == "native" and chosen.keep_deployed and chosen.threads == 2


def test_the_readme_option_table_is_the_option_table():
    readme = (REPO / "README.md").read_text()
    found = re.search(r"<!-- options:[^\n]*-->\n(.*?)\n<!-- /options -->", readme, re.S)
    assert found is not None, "README.md lost its <!-- options --> markers"
    assert found.group(1) == settings.markdown_table(), (
        "README.md's option table is out of date: run `python -m pytest_aiotbench.settings` "
        "and paste its output between the markers")


def test_pytest_help_lists_every_option_with_its_default(tmp_path):
    """The first command a user types, in a fresh process, in an empty folder."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    text = re.sub(r"\s+", " ", done.stdout)
    for field, entry in settings.options():
        assert f"--aiot-{entry.name}" in text
        default = re.sub(r"\s+", " ", settings.default_text(field, entry))
        assert re.search(re.escape(f"--aiot-{entry.name}") + r"[= ].*?" +
                         re.escape(f"(default: {default})"), text), entry.name
