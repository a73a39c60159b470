"""``aiotbench-report --history DIR``: a folder of saved runs made with the project's own
classes (results documents and a pytest-benchmark run holding aiotbench records), one of
them with a framework version change and one with a regressed gate verdict, plus a junk
file; the page opened in headless Chromium, as the report's is: the charts drawn, the
regressed point and the version change marked, the junk listed, the table's numbers the
inputs'. Then the command's refusals, one line each."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from headless_chromium import Chromium
from test_html_report import ARTEFACTS, chromium  # noqa: F401 (the browser fixture, shared)

from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure.result import PASSED, GateVerdict, WorkloadResult
from pytest_aiotbench.measure.stats import summarize
from pytest_aiotbench.measure.validity import CLASSIFICATION_AGREEMENT as AGREEMENT
from pytest_aiotbench.report.benchmark_records import BenchmarkRecords
from pytest_aiotbench.report.json_file import SCHEMA, ResultsDocument
from pytest_aiotbench.score.vips import score_all
from pytest_aiotbench.settings import Settings
from pytest_aiotbench.tools import report

ORT = WorkloadKey("local", "tiny_cnn", "onnxruntime")
LITERT = WorkloadKey("local", "tiny_cnn", "tflite")
PHONE = WorkloadKey("Pixel 8", "mobilenet_v2", "onnxruntime")
REGRESSED = {"mode": "paired", "ratio": 1.214, "ci_low": 1.15, "ci_high": 1.27, "rounds": 12,
             "verdict": "regressed", "metric": "median", "limit": "median:+10%",
             "reason": None}
PASSED_GATE = {**REGRESSED, "ratio": 0.99, "ci_low": 0.96, "ci_high": 1.02, "verdict": "ok"}


@dataclasses.dataclass(frozen=True)
class Run:
    """One saved run as the test made it: file name, when, and (key, median ms, framework
    version, gate) per workload."""

    name: str
    created: str
    workloads: tuple[tuple[WorkloadKey, float, str, dict | None], ...]


# File names sort in another order than the runs were made: the page orders by `created`.
RUNS = (
    Run("run-c.json", "2025-03-01T09:00:00+00:00", (
        (ORT, 4.0, "1.20.0", None), (LITERT, 5.0, "2.0.0", None),
        (PHONE, 12.0, "1.20.0", None))),
    Run("run-a.json", "2025-03-02T09:00:00+00:00", (
        (ORT, 4.1, "1.20.0", None), (LITERT, 5.1, "2.0.0", None),
        (PHONE, 12.5, "1.20.0", None))),
    Run("run-d.json", "2025-03-03T09:00:00+00:00", (  # ONNX Runtime's version changes
        (ORT, 4.05, "1.21.0", None), (LITERT, 4.9, "2.0.0", None))),
    Run("run-b.json", "2025-03-04T09:00:00+00:00", (  # ... and the gate catches a regression
        (ORT, 4.9, "1.21.0", REGRESSED), (LITERT, 5.0, "2.0.0", PASSED_GATE))),
)
BENCHMARK_RUN = Run(".benchmarks/Linux-CPython-3.11-64bit/0001_main.json",
                    "2025-03-05T09:00:00+00:00",
                    ((ORT, 4.2, "1.21.0", None), (LITERT, 5.05, "2.0.0", None)))
JUNK = "notes.json"


def result(key: WorkloadKey, median_ms: float, version: str) -> WorkloadResult:
    """A timed, scored workload whose samples spread ±5% around the median."""
    samples = [median_ms / 1e3 * (1 + 0.01 * ((i * 7) % 11 - 5)) for i in range(31)]
    return WorkloadResult(key, status=PASSED, stats=summarize(samples), samples_s=samples,
                          accuracy=0.9, accuracy_source=AGREEMENT, macs=50_000_000,
                          framework_version=version, runner="python", threads=2,
                          nodeid=f"test_tiny.py::test_workload[{key.id}]")


def results_of(run: Run) -> list[WorkloadResult]:
    return [result(key, median, version) for key, median, version, _ in run.workloads]


def write_results_file(folder: Path, run: Run) -> None:
    results = results_of(run)
    document = dataclasses.replace(
        ResultsDocument.build(results, score_all(results), {}, {"host": "ci"},
                              {"protocol": "rigorous"}), created=run.created)
    data = document.to_json()
    # The gate's verdict rides on the row as the gate writes it (`gate` in the row).
    for (key, _, _, gate), row in zip(
            run.workloads, (row for device in data["devices"].values()
                            for row in device["workloads"]), strict=True):
        assert WorkloadResult.from_json(row).key == key
        if gate is not None:
            row["gate"] = gate
    (folder / run.name).write_text(json.dumps(data))


def write_benchmark_run(folder: Path, run: Run) -> None:
    """A pytest-benchmark run as --benchmark-save writes one: the records aiotbench makes."""
    records: list = []
    aiotbench = BenchmarkRecords(Settings())
    for workload in results_of(run):
        aiotbench.add_detached(records, workload)
    path = folder / run.name
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "machine_info": {"node": "ci"}, "commit_info": {}, "datetime": run.created,
        "version": "5.3.1", "benchmarks": [record.as_dict() for record in records]},
        default=str))


@pytest.fixture(scope="module")
def history_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    for run in RUNS:
        write_results_file(folder, run)
    write_benchmark_run(folder, BENCHMARK_RUN)
    (folder / JUNK).write_text("median 4 ms, looked fine\n")
    return folder


#: Evaluated in the page once it has loaded: what plotly drew and what the tables say.
INSPECT = """
new Promise(resolve => setTimeout(resolve, 300)).then(() => {
  const chart = id => {
    const plot = document.querySelector(`#${id} .js-plotly-plot`);
    const box = plot.querySelector('svg.main-svg').getBoundingClientRect();
    const drawn = Array.from(plot.querySelectorAll('g.scatterlayer g.trace'));
    return {
      width: box.width, height: box.height,
      traces: plot.data.map((trace, index) => ({
        name: trace.name, x: trace.x, y: trace.y, text: trace.text,
        points: drawn[index].querySelectorAll('path.point').length,
        fills: Array.from(drawn[index].querySelectorAll('path.point'),
                          point => point.style.fill)})),
      errorbars: plot.querySelectorAll('g.errorbar').length,
      lines: plot.querySelectorAll('g.shapelayer path').length,
      annotations: Array.from(plot.querySelectorAll('g.annotation'), a => a.textContent)};
  };
  const table = id => Array.from(document.querySelectorAll(`#${id} table tbody tr`), row => ({
    css: row.className,
    cells: Array.from(row.cells, cell => cell.textContent),
    values: Array.from(row.cells, cell => cell.dataset.value === undefined ? null
                                          : parseFloat(cell.dataset.value))}));
  return {latency: chart('history-latency'), vips: chart('history-vips'),
          runs: table('history-runs'), verdicts: table('history-verdicts'),
          figures: table('history-table'),
          changes: Array.from(document.querySelectorAll('#history-version-changes li'),
                              item => item.textContent),
          skipped: Array.from(document.querySelectorAll('#history-skipped li'),
                              item => item.textContent),
          external: document.querySelectorAll('script[src], link[href]').length};
})
"""


def test_the_history_page_shows_every_run_in_a_browser(history_folder, chromium,  # noqa: F811
                                                       tmp_path, capsys):
    page = tmp_path / "history.html"
    assert report.main(["--history", str(history_folder), "-o", str(page)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == (f"aiotbench-report: 3 workload(s) over 5 run(s) from "
                           f"{history_folder} written to {page} (1 file(s) skipped)")
    assert err.startswith(f"aiotbench-report: skipped {history_folder / JUNK}: not JSON")

    found = visit(chromium, page)
    assert found["external"] == 0  # self-contained: nothing fetched from the network
    runs = [*RUNS, BENCHMARK_RUN]
    assert [row["cells"][0] for row in found["runs"]] == [run.name for run in runs]
    assert found["runs"][-1]["cells"][1] == "pytest-benchmark run"

    latency = found["latency"]
    assert latency["width"] > 300 and latency["height"] > 100
    traces = {trace["name"]: trace for trace in latency["traces"]}
    assert sorted(traces) == ["gate: regressed", "mobilenet_v2-onnxruntime on Pixel 8",
                              "tiny_cnn-onnxruntime on local", "tiny_cnn-tflite on local"]
    for key in (ORT, LITERT, PHONE):  # every run's median, in the order the runs were made
        trace = traces[f"{key.label} on {key.device}"]
        expected = [result(k, median, version).stats.median_s * 1e3
                    for run in runs for k, median, version, _ in run.workloads if k == key]
        assert trace["y"] == pytest.approx(expected, rel=1e-12)
        assert trace["points"] == len(expected)
    # A whisker on every workload's point (the gate's marks have none).
    assert latency["errorbars"] == sum(len(run.workloads) for run in runs)
    # The regressed run's point is marked red, its hover text naming the gate's figures.
    regressed = traces["gate: regressed"]
    assert regressed["points"] == 1 and regressed["x"] == ["2025-03-04 09:00:00"]
    assert regressed["fills"] == ["rgb(214, 39, 40)"]
    assert "gate regressed: paired, median ratio 1.214 [1.150, 1.270], 12 rounds, limit " \
           "median:+10%" in regressed["text"][0]
    # The framework version change: one dotted line at the run where it happened, named.
    assert latency["lines"] == 1
    assert latency["annotations"] == ["onnxruntime 1.20.0 → 1.21.0"]
    assert found["changes"] == ["run-d.json (2025-03-03 09:00:00): tiny_cnn-onnxruntime on "
                                "local: onnxruntime 1.20.0 → 1.21.0"]

    # VIPS per device: the documents' device scores; the pytest-benchmark run's sum of terms.
    vips = {trace["name"]: trace["y"] for trace in found["vips"]["traces"]}
    expected_vips = {"local": [], "Pixel 8": []}
    for run in runs:
        for score in score_all(results_of(run)):
            expected_vips[score.device].append(score.vips)
    assert vips == {device: pytest.approx(values, rel=1e-12)
                    for device, values in expected_vips.items()}
    assert [trace["points"] for trace in found["vips"]["traces"]] == [2, 5]

    # The verdicts' table: both gated rows, the regressed one marked.
    assert [(row["cells"][0], row["cells"][3], row["cells"][4], row["css"])
            for row in found["verdicts"]] == [
        ("run-b.json", "tiny_cnn-onnxruntime", "regressed", "regressed"),
        ("run-b.json", "tiny_cnn-tflite", "ok", "")]
    assert found["verdicts"][0]["values"][6:10] == [1.214, 1.15, 1.27, 12]

    assert found["skipped"] == [f"{JUNK}: not JSON (Expecting value: line 1 column 1 (char 0))"]
    check_figures_table(found["figures"], runs)


def check_figures_table(rows: list[dict], runs: list[Run]) -> None:
    """Every workload of every run, with the numbers the inputs hold."""
    expected = {}
    created_of = {run.name: run.created[:19].replace("T", " ") for run in runs}
    for run in runs:
        for key, median, version, gate in run.workloads:
            stats = result(key, median, version).stats
            expected[run.name, key.device, key.label] = (
                [stats.median_s * 1e3, stats.median_ci_low_s * 1e3,
                 stats.median_ci_high_s * 1e3], version, gate and gate["verdict"])
    shown = {}
    for row in rows:
        run, created, device, label, *_, version, gate = row["cells"]
        shown[run, device, label] = (row["values"][4:7], version, gate.split(":")[0] or None)
        assert created == created_of[run]
        assert row["cells"][4] == f"{row['values'][4]:.3f}"
    assert shown.keys() == expected.keys()
    for name, (numbers, version, verdict) in expected.items():
        assert shown[name][0] == pytest.approx(numbers, rel=1e-12), name
        assert shown[name][2] == verdict, name
        assert shown[name][1] == (f"{version} (was 1.20.0)" if name == (
            "run-d.json", "local", "tiny_cnn-onnxruntime") else version), name
    marked = {(row["cells"][0], row["cells"][3]): row["css"] for row in rows if row["css"]}
    assert marked == {("run-d.json", "tiny_cnn-onnxruntime"): "version-change",
                      ("run-b.json", "tiny_cnn-onnxruntime"): "regressed"}


def visit(chromium: Chromium, page: Path) -> dict:  # noqa: F811
    seen = chromium.visit(page.resolve().as_uri(), INSPECT)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / "history_report.png").write_bytes(seen.screenshot)
    assert seen.screenshot.startswith(b"\x89PNG") and len(seen.screenshot) > 20_000
    assert seen.console_errors == []
    return seen.evaluated


# ------------------------------------------------------------------------- refusals
def refusal(capsys, *arguments: str) -> str:
    assert report.main(list(arguments)) == 2
    err = capsys.readouterr().err
    assert err.startswith("aiotbench-report: error: --history ") and \
        len(err.strip().splitlines()) == 1, err
    return err


def test_a_missing_folder_is_refused(tmp_path, capsys):
    missing = tmp_path / "runs"
    assert f"--history {missing}: no such folder; give the folder that holds the " \
           "--aiot-json files" in refusal(capsys, "--history", str(missing))


def test_a_file_is_refused_with_the_way_to_report_it(tmp_path, capsys):
    single = tmp_path / "run.json"
    single.write_text("{}")
    err = refusal(capsys, "--history", str(single))
    assert f"--history {single} is a file, not a folder" in err
    assert f"aiotbench-report {single}" in err


def test_a_folder_without_usable_runs_names_what_was_looked_for(tmp_path, capsys):
    err = refusal(capsys, "--history", str(tmp_path), "-o", str(tmp_path / "h.html"))
    assert "holds no usable run: looked for --aiot-json results files (schema " \
           f"{SCHEMA}) and pytest-benchmark runs with aiotbench records" in err
    assert err.strip().endswith("found no .json file")
    (tmp_path / JUNK).write_text("median 4 ms\n")
    (tmp_path / "0001_other.json").write_text(json.dumps(
        {"datetime": "2025-03-01T09:00:00", "benchmarks": [
            {"name": "test_sort", "extra_info": {}, "stats": {"median": 1.0}}]}))
    (tmp_path / "broken.json").write_text(json.dumps(
        {"schema": SCHEMA, "devices": {"Pixel 8": {"facts": {}, "workloads": [{}]}}}))
    err = refusal(capsys, "--history", str(tmp_path), "-o", str(tmp_path / "h.html"))
    assert err.strip().endswith(
        "skipped 3 file(s): 0001_other.json: a pytest-benchmark run with no aiotbench records "
        "(1 other benchmark(s)); broken.json: device 'Pixel 8' has a malformed workload "
        "(KeyError: 'device'); notes.json: not JSON (Expecting value: line 1 column 1 (char "
        "0))")
    assert not (tmp_path / "h.html").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--history", "runs", "a.json"], "give either RESULTS.json files or --history DIR (it "
                                      "reads the folder's runs itself), not both"),
    ([], "give RESULTS.json files (pytest --aiot-json=PATH), or --history DIR")])
def test_history_and_results_files_are_one_or_the_other(arguments, message, capsys):
    with pytest.raises(SystemExit) as exited:
        report.main(arguments)
    assert exited.value.code == 2
    assert f"aiotbench-report: error: {message}" in capsys.readouterr().err


def test_an_output_folder_is_refused(history_folder, tmp_path, capsys):
    assert report.main(["--history", str(history_folder), "-o", str(tmp_path)]) == 2
    assert f"-o {tmp_path} is a folder; give a file path, for example " \
           f"{tmp_path / 'history.html'}" in capsys.readouterr().err


@pytest.mark.parametrize("written, read", [
    (None, None),
    ({"mode": "stored"}, None),  # no verdict: nothing to show
    ({"verdict": "worse", "ratio": "1.3", "rounds": True, "extra": 1},  # odd types: absent
     GateVerdict("worse")),
    (REGRESSED, GateVerdict("regressed", "paired", 1.214, 1.15, 1.27, 12, "median",
                               "median:+10%")),
    (GateVerdict("better", "unchanged"), GateVerdict("better", "unchanged")),  # typed
    ("regressed", None)])
def test_a_rows_gate_is_read_defensively(written, read):
    assert GateVerdict.read(written) == read
