"""The session's bookkeeping, in-process and in milliseconds: results recorded and replaced,
a stage's failure kept, facts merged across xdist workers, the results document and its
reading back, the table. Results here are built from samples as a runner returns them."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from pytest_aiotbench import tasks
from pytest_aiotbench.artifacts.cache import ExportCost
from pytest_aiotbench.devices import DeployStats, DeviceFacts
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.measure import WorkloadResult, compare, summarize
from pytest_aiotbench.measure.result import FAILED, PASSED, SKIPPED
from pytest_aiotbench.measure.validity import CLASSIFICATION_AGREEMENT as AGREEMENT
from pytest_aiotbench.networks.card import Output
from pytest_aiotbench.report import table
from pytest_aiotbench.report.json_file import SCHEMA, ResultsDocument, ResultsFileError
from pytest_aiotbench.runner.protocol import PeakCompute
from pytest_aiotbench.score import score_all
from pytest_aiotbench.session import BenchSession, RunFacts
from pytest_aiotbench.settings import parse
from pytest_aiotbench.stages import StageCounts, StageFailed, StageSkipped


def timed(device: str, network: str, framework: str, median_ms: float,
          variant: str = "fp32", seed: int = 0) -> WorkloadResult:
    """A passed result whose samples lie around ``median_ms``."""
    draw = random.Random(seed)
    samples = sorted(median_ms / 1e3 * (1 + draw.uniform(-0.05, 0.05)) for _ in range(41))
    reference = np.asarray([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    answers = [[row] for row in reference]  # per probe, its one output
    result = WorkloadResult(WorkloadKey(device, network, framework, variant), status=PASSED,
                            samples_s=samples, stats=summarize(samples), macs=300_000_000,
                            threads=2, runner="python",
                            validity=compare(answers, (reference,),
                                             (Output("output", (1, 3), "float32"),), 1e-3,
                                             tasks.get("classification")))
    result.accuracy, result.accuracy_source = 1.0, AGREEMENT
    return result


@pytest.fixture
def session(tmp_path):
    return BenchSession(parse({"json": str(tmp_path / "results.json")}, tmp_path),
                        progress=lambda line: None)


def test_a_retiming_replaces_the_earlier_result_and_the_json_follows_each_record(session):
    first, second = timed("local", "m", "tflite", 4.0), timed("local", "m", "onnxruntime", 5.0)
    session.record(first)
    session.record(second)
    retimed = timed("local", "m", "tflite", 3.0, seed=1)
    session.record(retimed)
    assert session.results == [retimed, second]
    assert session.latest(first.key) is retimed
    written = json.loads(session.settings.json_path.read_text())
    rows = written["devices"]["local"]["workloads"]
    assert [row["id"] for row in rows] == ["m-tflite-local", "m-onnxruntime-local"]
    assert rows[0]["stats"]["median_s"] == pytest.approx(retimed.stats.median_s)


def test_a_stage_that_failed_or_skipped_is_kept_with_its_stage_and_reason(session):
    key = WorkloadKey("local", "m", "executorch")
    session.record_stage_error(key, StageFailed("export", "No space left on device"), "n::t[x]")
    skipped = WorkloadKey("local", "m", "pytorch-mobile", "int8")
    session.record_stage_error(skipped, StageSkipped("export", "no int8 variant"), "n::t[y]")
    failed, skip = session.results
    assert (failed.status, failed.stage, failed.error) == (FAILED, "export",
                                                           "No space left on device")
    assert failed.backend == "xnnpack" and skip.status == SKIPPED
    assert any("not scored: m-executorch: failed: No space left on device" in line
               for line in session.summary_lines())


def test_workers_facts_merge_into_the_controllers_and_travel_as_json():
    board = DeviceFacts("adb", "Board", model="Board", machine="aarch64", cores=4,
                        peak_compute=PeakCompute(True, {1: 10.0, 4: 38.5}, "sgemm"))
    one = RunFacts({"Board": board}, {"Board": DeployStats(3, 1, 1000)}, ["x (offline)"],
                   StageCounts(1.5, 1, [ExportCost("m.pte", 20.3, 1_900_000_000),
                                        ExportCost("m.onnx", 3.0, None)]))
    two = RunFacts({"local": DeviceFacts("local", "local", cores=2)},
                   {"Board": DeployStats(1, 4, 10)}, ["x (offline)"], StageCounts(0.5, 3))
    merged = RunFacts()
    for facts in (one, two):
        merged.merge(RunFacts.from_json(json.loads(json.dumps(facts.to_json()))))
    assert merged.device_facts == {"Board": board, "local": DeviceFacts("local", "local",
                                                                        cores=2)}
    assert merged.deploy["Board"] == DeployStats(4, 5, 1010)
    assert merged.unavailable == ["x (offline)"]
    assert (merged.counts.artifacts_built, merged.counts.artifacts_reused) == (2, 4)
    assert merged.counts.describe_exports() == ("2 exported in 23.3 s (slowest: m.pte, 20.3 s, "
                                                "peak 1.9 GB)")
    assert StageCounts().describe_exports() == "0 exported"
    assert merged.facts_with_deploy()["Board"].deploy == DeployStats(4, 5, 1010)


def test_the_results_document_reads_back_what_was_written(tmp_path):
    results = [timed("local", "m", "tflite", 4.0), timed("local", "m", "onnxruntime", 8.0),
               timed("Board", "m", "tflite", 40.0)]
    facts = {"local": DeviceFacts("local", "local", cores=2,
                                  peak_compute=PeakCompute(True, {2: 100.0}, "sgemm")),
             "Board": DeviceFacts("adb", "Board", machine="aarch64")}
    document = ResultsDocument.build(results, score_all(results), facts, {"host": "h"},
                                     {"protocol": "rigorous"})
    document.write(tmp_path / "r.json")
    again = ResultsDocument.from_json(json.loads((tmp_path / "r.json").read_text()))
    assert again.ranking == ["local", "Board"]
    assert [r.to_json() for r in again.results()] == [r.to_json() for r in document.results()]
    local = again.devices["local"]
    assert local.facts == facts["local"]
    row = local.workloads[0]
    assert row.vips == pytest.approx(1.0 / results[0].stats.median_s)
    # GMAC/s at t, as a share of the probe's peak at the same thread count (2 FLOPs a MAC).
    assert row.gmac_per_s == pytest.approx(0.3 / results[0].stats.median_s)
    assert row.peak_share == pytest.approx(row.gmac_per_s * 2 / 100.0)


@pytest.mark.parametrize(("data", "message"), [
    ({"benchmarks": []}, f"not an aiotbench results file (expected \"schema\": \"{SCHEMA}\""),
    ({"schema": "pytest-aiotbench/0"}, "has schema 'pytest-aiotbench/0'; this version of "
                                       f"pytest-aiotbench reads '{SCHEMA}'"),
    ({"schema": SCHEMA}, "has no \"devices\" object"),
    ({"schema": SCHEMA, "devices": {"P": {"workloads": [{"device": "P"}]}}},
     "device 'P' has a malformed workload (KeyError"),
])
def test_a_document_this_version_cannot_read_is_refused_naming_why(data, message):
    with pytest.raises(ResultsFileError) as raised:
        ResultsDocument.from_json(data)
    assert message in str(raised.value)


def test_a_row_of_an_older_file_without_implementation_or_backend_reads_with_defaults():
    row = timed("local", "m", "onnxruntime", 2.0).to_json()
    for field in ("implementation", "backend", "id"):
        del row[field]
    assert WorkloadResult.from_json(row).key == WorkloadKey("local", "m", "onnxruntime")


def test_the_table_has_a_block_per_device_then_the_ranking():
    results = [timed("local", "m", "tflite", 4.0), timed("local", "m", "tflite", 2.0, "int8"),
               timed("Board", "m", "tflite", 40.0)]
    failed = WorkloadResult(WorkloadKey("Board", "m", "onnxruntime"), status=FAILED,
                            stage="deploy", error="push failed: FAIL\nmore")
    lines = table.render(score_all([*results, failed]), {
        "Board": DeviceFacts("adb", "Board", model="RK3588", machine="aarch64", cores=8)})
    text = "\n".join(lines)
    assert "device Board (RK3588, aarch64, 8 cores)" in text
    assert "not scored: m-onnxruntime: failed: push failed: FAIL" in text
    # The variant's gain against its fp32 row: the same accuracy, twice as fast.
    int8 = next(line for line in lines if " int8 " in line)
    assert "+0.000" in int8 and "2.00x" in int8
    ranking = lines[lines.index("ranking by VIPS:") + 1:]
    assert ranking[0].startswith("  1. local") and ranking[1].startswith("  2. Board")
    medians = [r.stats.median_s for r in results[:2]]
    vips = float(ranking[0].split("VIPS")[1].split("VOPS")[0])
    assert vips == pytest.approx(sum(1 / t for t in medians), rel=1e-5)
    assert "(2 workloads)" in ranking[0] and "(1 workloads)" in ranking[1]
