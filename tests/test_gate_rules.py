"""The gate's rules on figures whose answer is known: what a limit means, and that only a
change beyond both the limit and the noise fails."""

from __future__ import annotations

import pytest

from pytest_aiotbench.gate import METRICS, Estimate, ThresholdError, parse_fail_on
from pytest_aiotbench.gate.compare import Change

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
