"""The HTML report, made from real measurements of a small run and opened in headless
Chromium: no console errors, every chart drawn (a ranking, one latency distribution per
workload), a screenshot kept; and ``aiotbench-report`` merging saved runs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from html import escape
from pathlib import Path

import pytest
from conftest import FAST, REPO, TINY_CNN_MODULE, unavailable
from debian_packages import PackageUnavailable
from headless_chromium import Chromium, PageVisit, fetch_chromium

from pytest_aiotbench import settings
from pytest_aiotbench.measure.flags import FlagKind
from pytest_aiotbench.measure.result import WorkloadResult
from pytest_aiotbench.report import html
from pytest_aiotbench.report.json_file import SCHEMA, ResultsDocument
from pytest_aiotbench.tools import report

#: Screenshots are kept here as the tests' artefacts (models/results is ignored by git).
ARTEFACTS = REPO / "models" / "results" / "artefacts"

#: Evaluated in the page once it has loaded: what each chart drew, and a click on the first
#: workload table's "median ms" header (it must sort the rows).
INSPECT = """
new Promise(resolve => setTimeout(resolve, 300)).then(() => {
  const charts = Array.from(document.querySelectorAll('div.chart')).map(chart => {
    const svg = chart.querySelector('svg.main-svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const section = chart.closest('section.device');
    return {kind: chart.dataset.chart, device: section ? section.dataset.device : null,
            violins: chart.querySelectorAll('g.violinlayer g.trace').length,
            violin_paths: chart.querySelectorAll('g.violinlayer path.violin').length,
            bars: chart.querySelectorAll('g.barlayer g.point path').length,
            points: chart.querySelectorAll('g.scatterlayer path.point').length,
            width: box.width, height: box.height};
  });
  const table = document.querySelector('section.device table.sortable');
  const header = Array.from(table.tHead.rows[0].cells);
  const median = header.findIndex(cell => cell.textContent === 'median ms');
  header[median].click();
  const medians = Array.from(table.tBodies[0].rows,
                             row => parseFloat(row.cells[median].dataset.value));
  return {charts, medians,
          devices: Array.from(document.querySelectorAll('section.device'),
                              section => section.dataset.device),
          headings: Array.from(document.querySelectorAll('h2'), h => h.textContent),
          external: document.querySelectorAll('script[src], link[href]').length};
})
"""


@dataclasses.dataclass(frozen=True)
class SmallRun:
    first: Path  # results of a first session
    second: Path  # results of a second session, compared with the first, profiled
    page: Path  # the second session's --aiot-html page
    second_output: str  # the second session's terminal


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, artifact_cache) -> SmallRun:
    """Two real sessions on the local device: a tiny CNN in ONNX Runtime and LiteRT, fp32
    and dynamic int8 (four workloads); the second against the first as its baseline, with
    per-operator profiles, writing the page."""
    root = tmp_path_factory.mktemp("html-report")
    (root / "test_tiny.py").write_text(TINY_CNN_MODULE)

    def session(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "test_tiny.py", *FAST,
             f"--aiot-cache={artifact_cache}", "--aiot-framework=onnxruntime,tflite",
             "--aiot-variant=fp32,dynamic-int8", *args],
            cwd=root, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        return done.stdout

    first, second, page_path = root / "first.json", root / "second.json", root / "report.html"
    session(f"--aiot-json={first}")
    output = session(f"--aiot-json={second}", f"--aiot-baseline={first}",
                     f"--aiot-html={page_path}", "--aiot-profile")
    return SmallRun(first, second, page_path, output)


@pytest.fixture(scope="module")
def chromium():
    """Debian's headless Chromium; where it cannot be had the tests skip with the reason,
    except in CI (CI=true), where they must run."""
    try:
        browser = Chromium(*fetch_chromium())
    except PackageUnavailable as exc:
        unavailable("headless Chromium", exc)
    yield browser
    browser.close()


def open_page(chromium: Chromium, page: Path, screenshot: str) -> PageVisit:
    visit = chromium.visit(page.resolve().as_uri(), INSPECT)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTEFACTS / screenshot
    kept.write_bytes(visit.screenshot)
    print(f"screenshot of {page}: {kept}")
    assert visit.screenshot.startswith(b"\x89PNG") and len(visit.screenshot) > 20_000
    assert visit.console_errors == []
    return visit


def workloads(path: Path) -> dict[str, list[dict]]:
    document = json.loads(path.read_text())
    return {alias: device["workloads"] for alias, device in document["devices"].items()}


def charts(visit: PageVisit, kind: str) -> list[dict]:
    return [chart for chart in visit.evaluated["charts"] if chart["kind"] == kind]


def test_the_session_page_draws_every_chart_in_a_browser(small_run, chromium):
    timed = workloads(small_run.second)["local"]
    assert len(timed) == 4 and all(row["samples_s"] for row in timed)
    visit = open_page(chromium, small_run.page, "html_report_session.png")
    found = visit.evaluated
    assert found["external"] == 0  # self-contained: nothing fetched from the network
    for chart in found["charts"]:  # every chart drew something of a real size
        assert chart["width"] > 300 and chart["height"] > 100, chart
    (ranking,) = charts(visit, "ranking")
    assert ranking["bars"] == 2  # one device: its VIPS bar and its VOPS bar
    # One distribution per workload, each drawn from its samples.
    (distribution,) = charts(visit, "distribution")
    assert distribution["violins"] == len(timed) and distribution["violin_paths"] == len(timed)
    # Both frameworks' dynamic-int8 against their fp32.
    assert charts(visit, "variants")[0]["points"] == 2
    assert charts(visit, "efficiency")[0]["bars"] == len(timed)
    # The table sorts by median when its header is clicked.
    assert len(found["medians"]) == len(timed) and found["medians"] == sorted(found["medians"])
    assert any(heading.startswith("Against the baseline") for heading in found["headings"])
    page = small_run.page.read_text()
    # The probed peak made it from the runner through the facts to the page.
    assert "% of peak" in page and "Peak probe: numpy" in page
    # The operators: the profiled frameworks' stacked bars side by side for the network.
    (operators,) = charts(visit, "operators")
    assert operators["bars"] >= 2 * 2  # two ONNX Runtime workloads, two op types at least
    assert "Operators: where one inference spends its time" in found["headings"]
    assert "Delegation: what each artifact's delegate takes" in found["headings"]


def test_profiles_and_delegation_reach_the_json_the_terminal_and_the_page(small_run):
    """--aiot-profile: each ONNX Runtime row carries its operators (the issue's form), the
    LiteRT rows the reason they have none (the Python runner); every row's artifact carries
    its delegation facts; the terminal has one line per workload; the page's operators and
    delegation sections name every workload."""
    rows = {row["id"].removesuffix("-local"): row
            for row in workloads(small_run.second)["local"]}
    assert sorted(rows) == ["tiny_cnn-onnxruntime", "tiny_cnn-onnxruntime-dynamic-int8",
                            "tiny_cnn-tflite", "tiny_cnn-tflite-dynamic-int8"]
    for row in rows.values():
        profile = row["profile"]
        if row["framework"] == "onnxruntime":
            assert set(profile) == {"ops", "total_s", "runs", "source"}, profile
            assert profile["runs"] == 10 and profile["source"].startswith("onnxruntime")
            assert {op["delegate"] for op in profile["ops"]} == {"CPUExecutionProvider"}
            assert sum(op["time_s"] for op in profile["ops"]) <= profile["total_s"] * 1.05
        else:
            assert set(profile) == {"unavailable"} and "native" in profile["unavailable"]
        delegation = row["artifact"]["delegation"]
        assert delegation["delegate"] in ("XNNPACK", "CPUExecutionProvider"), delegation
        assert delegation["delegated_ops"] > 0, delegation
    # The int8 ONNX model's profile shows its integer kernels, the fp32's none.
    int8_types = {op["op_type"]
                  for op in rows["tiny_cnn-onnxruntime-dynamic-int8"]["profile"]["ops"]}
    fp32_types = {op["op_type"] for op in rows["tiny_cnn-onnxruntime"]["profile"]["ops"]}
    assert int8_types - fp32_types and not {"DynamicQuantizeLinear"} & fp32_types
    lines = [line for line in small_run.second_output.splitlines()
             if line.startswith("operators tiny_cnn-")]
    assert sorted(line.split(":")[0] for line in lines) == [
        f"operators {label}" for label in sorted(rows)], lines
    assert any("no profile: LiteRT's Python Interpreter" in line for line in lines)
    page = small_run.page.read_text()
    operators = page.split("<section id='operators'>")[1].split("</section>")[0]
    delegation = page.split("<section id='delegation'>")[1].split("</section>")[0]
    for label in rows:
        assert label in operators and label in delegation
    assert "unavailable: LiteRT" in operators


def test_the_page_is_the_json_files_page(small_run, tmp_path):
    """--aiot-html and aiotbench-report are one code path: the saved JSON gives the same
    tables (the charts' ids are random, so the page's tables are compared)."""
    out = tmp_path / "again.html"
    assert report.main([str(small_run.second), "-o", str(out)]) == 0

    def tables(text: str) -> list[str]:
        return [part.split("</table>")[0] for part in text.split("<table")[1:]]

    # Only the source's name differs: "this session" against the file's.
    saved = out.read_text().replace(str(small_run.second), "this session")
    assert tables(small_run.page.read_text()) == tables(saved)


def as_device(document: dict, alias: str) -> dict:
    """A results document as if another device had measured it (a phone farm's file)."""
    (entry,) = document["devices"].values()
    for row in entry["workloads"]:
        row["device"] = alias
    entry["facts"]["alias"] = alias
    return {**document, "devices": {alias: entry}, "ranking": [alias]}


def test_aiotbench_report_merges_two_devices_into_one_ranking(small_run, chromium, tmp_path):
    phone = tmp_path / "pixel.json"
    phone.write_text(json.dumps(as_device(json.loads(small_run.first.read_text()), "Pixel 8")))
    page = tmp_path / "farm.html"
    done = subprocess.run([sys.executable, "-m", "pytest_aiotbench.tools.report",
                           str(small_run.second), str(phone), "-o", str(page)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("aiotbench-report: 2 device(s) from 2 file(s) written to "
                                   f"{page}")
    visit = open_page(chromium, page, "html_report_merged.png")
    assert sorted(visit.evaluated["devices"]) == ["Pixel 8", "local"]
    (ranking,) = charts(visit, "ranking")
    assert ranking["bars"] == 4  # two devices, each a VIPS and a VOPS bar
    distributions = charts(visit, "distribution")
    assert sorted(chart["device"] for chart in distributions) == ["Pixel 8", "local"]
    assert all(chart["violins"] == 4 for chart in distributions)


def test_two_runs_of_one_device_stand_side_by_side(small_run):
    runs = html.device_runs([
        html.Source(path.name, ResultsDocument.from_json(json.loads(path.read_text())))
        for path in (small_run.first, small_run.second)])
    assert [run.name for run in runs] == ["local (first.json)", "local (second.json)"]
    assert all(r.device == run.name for run in runs for r in run.results)


def test_flags_and_validity_show_where_they_occurred(small_run):
    """Each row's flags with their reasons and what each kind means, a file written before
    the flag list (its thermal findings as "throttled") read as throttled flags, and the
    invalid rows; a page of unflagged, valid rows says so."""
    document = json.loads(small_run.first.read_text())
    rows = document["devices"]["local"]["workloads"]
    for row in rows:  # a quiet, stable run, whatever this machine did meanwhile
        row["flags"] = []
    assert ("No row flagged (throttled, busy or unstable), every measured workload valid."
            in html.render([html.Source("first.json", ResultsDocument.from_json(document))]))
    throttled, diverged, busy = rows[:3]
    del throttled["flags"]
    throttled["throttled"] = ["cpu0 fell from 3000000 to 1200000 kHz (-60%)"]
    diverged["status"] = "invalid"
    diverged["error"] = "outputs diverge from the fp32 reference: max relative error 0.9"
    busy["flags"] = [{"kind": "busy", "reason": "others took 47% of the timed cores 0,1"},
                     {"kind": "a kind of a later version", "reason": "unknown-kind-reason"}]
    page = html.render([html.Source("edited.json", ResultsDocument.from_json(document))])
    first, second, third = (WorkloadResult.from_json(row).key.label
                            for row in (throttled, diverged, busy))
    assert f"throttled: {first}: cpu0 fell from 3000000 to 1200000 kHz (-60%)" in page
    assert (f"invalid: {second}: outputs diverge from the fp32 reference: max relative "
            "error 0.9") in page
    assert f"busy: {third}: others took 47% of the timed cores 0,1" in page
    for kind in (FlagKind.THROTTLED, FlagKind.BUSY):
        assert f"{kind.value}: {escape(kind.meaning)}" in page
    assert escape(FlagKind.UNSTABLE.meaning) not in page and "unknown-kind-reason" not in page
    assert "No row flagged" not in page


def test_aiotbench_report_refuses_bad_input_with_one_line(tmp_path, capsys):
    not_json = tmp_path / "notes.json"
    not_json.write_text("median 4 ms\n")
    benchmark = tmp_path / "0001_benchmark.json"
    benchmark.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"schema": SCHEMA, "devices": {
        "Pixel 8": {"facts": {}, "workloads": [{"device": "Pixel 8"}]}}}))
    cases = {
        (str(tmp_path / "missing.json"),): "missing.json: no such file; give results files "
                                           "written by pytest --aiot-json=PATH",
        (str(not_json),): f"{not_json}: not JSON (Expecting value: line 1 column 1 (char 0)); "
                          "expected an aiotbench results file (pytest --aiot-json=PATH)",
        (str(benchmark),): f"{benchmark}: not an aiotbench results file (expected \"schema\": "
                           f"\"{SCHEMA}\", as --aiot-json writes; found None)",
        (str(broken),): f"{broken}: device 'Pixel 8' has a malformed workload",
        (str(tmp_path),): f"{tmp_path} is a folder; give the results files in it",
        (str(broken), str(broken)): f"{broken} is given twice; name each results file once",
    }
    for arguments, message in cases.items():
        assert report.main([*arguments, "-o", str(tmp_path / "out.html")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("aiotbench-report: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.html").exists()


def test_aiotbench_report_refuses_a_folder_as_its_output(small_run, tmp_path, capsys):
    assert report.main([str(small_run.first), "-o", str(tmp_path)]) == 2
    assert f"-o {tmp_path} is a folder; give a file path" in capsys.readouterr().err


def test_aiot_html_naming_a_folder_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(settings.SettingsError,
                       match=r"--aiot-html=.* is a folder; give a file path, for example "
                             r".*report\.html"):
        settings.parse({"html": str(tmp_path)}, tmp_path)
