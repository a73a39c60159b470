"""The gate's rules on figures whose answer is known: what a limit means, and that only a
change beyond both the limit and the noise fails."""

from __future__ import annotations

import hashlib
import json

import pytest

from pytest_aiotbench.gate import (
    METRICS,
    BaselineArtifacts,
    Estimate,
    ThresholdError,
    WorkloadFigures,
    pairing,
    parse_fail_on,
)
from pytest_aiotbench.gate.compare import Change
from pytest_aiotbench.gate.pairing import PAIRED, STORED, UNCHANGED, PairedRatio
from pytest_aiotbench.identity import WorkloadKey
from pytest_aiotbench.runner.protocol import PAIRED_ORDERS, PairedRound, PairedTiming

MS = 1e-3


def test_limits_read_as_written():
    median, top1, vips, p90 = parse_fail_on("median:+10%, top1:-0.01,vips:-5%,p90:2ms")
    assert (median.metric.name, median.limit, median.relative) == ("median", 0.10, True)
    assert (top1.limit, top1.relative) == (0.01, False)
    assert (vips.limit, vips.relative) == (0.05, True)
    assert p90.limit == pytest.approx(2 * MS) and not p90.relative  # the sign may be left out
    assert median.describe_limit() == "+10%" and top1.describe_limit() == "-0.01"
    assert p90.describe_limit() == "+2 ms"
    assert parse_fail_on("") == () and parse_fail_on(None) == ()


@pytest.mark.parametrize(("text", "message"), [
    ("median:+10%,median:+5%", "'median' is given twice"),
    ("median:", "'median:' has no limit; write it as median:+10%"),
    ("median:+ten%", "cannot read the limit '+ten%'"),
    ("top5:-0.01ms", "top5 has no unit"),
    ("median:+2000%", "out of range: use at most +1000%"),
    ("vips:+5%", "would fail a release for being higher"),
])
def test_bad_limits_say_what_is_wrong(text, message):
    with pytest.raises(ThresholdError, match=message.replace("+", r"\+")):
        parse_fail_on(text)


def median_change(limit: str, baseline: tuple[float, float, float],
                  now: tuple[float, float, float]) -> Change:
    (threshold,) = parse_fail_on(f"median:{limit}")
    return Change(threshold, Estimate(*(x * MS for x in baseline)),
                  Estimate(*(x * MS for x in now)))


def test_a_slowdown_the_noise_could_explain_does_not_fail():
    # +15% on the medians, but the intervals allow as little as 11.0 / 10.2 = +7.8%.
    change = median_change("+10%", (10.0, 9.8, 10.2), (11.5, 11.0, 12.0))
    assert change.change == pytest.approx(0.15)
    assert change.least == pytest.approx(11.0 / 10.2 - 1)
    assert change.beyond_noise and not change.failed
    assert change.verdict() == "worse, within +10%"


def test_a_slowdown_beyond_limit_and_noise_fails_with_figures():
    change = median_change("+10%", (10.0, 9.8, 10.2), (12.0, 11.5, 12.5))
    assert change.failed
    assert change.verdict() == "REGRESSED (limit +10%)"
    assert change.describe() == ("median 10 ms -> 12 ms (+20.0%; beyond (at least +12.7%) "
                                 "the noise)")


def test_overlapping_intervals_are_within_the_noise_either_way():
    change = median_change("+0%", (10.0, 9.5, 10.5), (10.4, 10.1, 10.9))
    assert not change.beyond_noise and not change.failed and change.verdict() == "ok"
    faster = median_change("+10%", (10.0, 9.8, 10.2), (7.0, 6.9, 7.1))
    assert faster.verdict() == "better" and not faster.failed


def test_an_absolute_latency_limit():
    assert median_change("+1ms", (10.0, 9.9, 10.1), (11.5, 11.2, 11.8)).failed
    assert not median_change("+2ms", (10.0, 9.9, 10.1), (11.5, 11.2, 11.8)).failed


def test_accuracy_falls_are_measured_in_points_and_exact_in_one_run():
    (threshold,) = parse_fail_on("top1:-0.01")
    dropped = Change(threshold, Estimate.exact(0.76), Estimate.exact(0.74))
    assert dropped.failed and dropped.describe() == ("top1 0.760 -> 0.740 (-0.020; exact "
                                                     "figures, no noise)")
    slight = Change(threshold, Estimate.exact(0.76), Estimate.exact(0.755))
    assert not slight.failed and slight.verdict() == "worse, within -0.01"
    # Several baseline runs: their range is the noise.
    spread = Change(threshold, Estimate(0.75, 0.735, 0.76), Estimate.exact(0.74))
    assert not spread.failed and spread.noise() == "within"


def test_every_metric_has_a_direction_and_a_scope():
    for metric in METRICS.values():
        assert metric.worse in (1, -1) and metric.scope in ("workload", "device")
    assert [m.name for m in METRICS.values() if m.scope == "device"] == ["vips", "vops"]


# ------------------------------------------------------------------------------- paired
def rounds_of(ratios: list[float], base_ms: float = 10.0) -> PairedTiming:
    """Rounds whose current side is ``ratio`` times the baseline's, the baseline drifting."""
    rounds = []
    for index, ratio in enumerate(ratios):
        drift = 1 + 0.5 * (index % 3)  # the machine slows both sides alike
        base = [base_ms * MS * drift * f for f in (0.98, 1.0, 1.03)]
        rounds.append(PairedRound(PAIRED_ORDERS[index % 2], base, [t * ratio for t in base]))
    return PairedTiming(0.01, [], rounds, "converged")


def test_paired_ratio_is_the_median_of_per_round_ratios_drift_cancels():
    paired = PairedRatio.of(rounds_of([1.2] * 9 + [1.18, 1.22, 1.21]), 0.5, 0.95)
    assert paired.rounds == 12
    assert paired.ratio.value == pytest.approx(1.2)
    assert 1.18 <= paired.ratio.low <= 1.2 <= paired.ratio.high <= 1.22
    # Each side's per-round medians drift from 10 to 20 ms; the ratio does not.
    assert paired.baseline.low == pytest.approx(10 * MS) and paired.baseline.high > 15 * MS


def paired_change(limit: str, ratios: list[float]) -> Change:
    (threshold,) = parse_fail_on(f"median:{limit}")
    return Change.paired(threshold, PairedRatio.of(rounds_of(ratios), 0.5, 0.95))


def test_a_paired_change_fails_beyond_its_limit_when_its_interval_excludes_no_change():
    slower = paired_change("+10%", [1.2, 1.19, 1.21, 1.2, 1.22, 1.18, 1.2, 1.2])
    assert slower.failed and slower.verdict() == "REGRESSED (limit +10%)"
    assert slower.word() == "regressed" and slower.change == pytest.approx(0.2)
    assert slower.noise().startswith("beyond: ratio 1.200 [1.1") and "8 rounds" in slower.noise()
    # As slow, but some rounds say "no change": the interval does not exclude it. It passes,
    # and says that the rounds could not tell.
    unsure = paired_change("+10%", [1.2, 0.9, 1.5, 1.2, 0.95, 1.3, 1.2, 0.97])
    assert unsure.least < 0 and not unsure.failed and unsure.word() == "inconclusive"
    assert unsure.verdict() == "inconclusive (the interval reaches +50.0%, beyond +10%)"
    steady = paired_change("+10%", [1.0, 0.99, 1.01, 1.0, 1.02, 0.98, 1.0, 1.01])
    assert steady.word() == "ok" and steady.verdict() == "ok"
    within = paired_change("+10%", [1.05, 1.04, 1.06, 1.05, 1.05, 1.06, 1.04, 1.05])
    assert not within.failed and within.verdict() == "worse, within +10%"
    faster = paired_change("+10%", [0.8] * 8)
    assert faster.word() == "better"
    # An absolute limit: the ratio's change in seconds of the re-timed baseline's median.
    assert paired_change("+1ms", [1.2] * 8).failed
    assert not paired_change("+5ms", [1.2] * 8).failed


def figures(sha256: str, version: str = "1.0", size: int | None = None) -> WorkloadFigures:
    key = WorkloadKey(device="local", network="net", framework="onnxruntime")
    return WorkloadFigures(key, "passed", Estimate.exact(MS), framework_version=version,
                           artifact_sha256=sha256, artifact_bytes=size)


def test_a_baseline_artifact_is_found_by_its_hash_in_a_folder_or_the_cache(tmp_path):
    folder, cache = tmp_path / "kept", tmp_path / "cache"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "model.onnx").write_bytes(b"baseline model")
    (folder / "same-size.onnx").write_bytes(b"baseline mode!")  # same size, other bytes
    entry = cache / "net-onnxruntime-abc"
    entry.mkdir(parents=True)
    (entry / "model.tflite").write_bytes(b"cached model")
    (entry / "meta.json").write_text(json.dumps({"sha256": sha256(b"cached model"),
                                                 "filename": "model.tflite"}))
    artifacts = BaselineArtifacts(cache, folder)
    wanted = sha256(b"baseline model")
    assert artifacts.find(wanted, len(b"baseline model")) == folder / "sub" / "model.onnx"
    assert artifacts.find(sha256(b"cached model")) == entry / "model.tflite"
    assert artifacts.find(sha256(b"nowhere")) is None
    # Found, so paired; the same artifact, unchanged; not found, stored and why.
    plan = pairing.plan(figures(wanted, size=14), "new", ab="auto", protocol="rigorous",
                        artifacts=artifacts)
    assert plan.mode == PAIRED and plan.baseline_artifact == folder / "sub" / "model.onnx"
    assert pairing.plan(figures("same"), "same", ab="auto", protocol="rigorous",
                        artifacts=artifacts).mode == UNCHANGED
    lost = pairing.plan(figures(sha256(b"gone")), "new", ab="auto", protocol="rigorous",
                        artifacts=artifacts)
    assert lost.mode == STORED and str(folder) in lost.reason and str(cache) in lost.reason
    assert "--aiot-baseline-artifacts=DIR" in lost.reason
    off = pairing.plan(figures(wanted), "new", ab="off", protocol="rigorous",
                       artifacts=artifacts)
    assert (off.mode, off.reason) == (STORED, "--aiot-ab=off")
    # A file that changed after it was found is hashed again: no longer the baseline's.
    (folder / "sub" / "model.onnx").write_bytes(b"edited model!!")
    assert artifacts.find(wanted, 14) is None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
