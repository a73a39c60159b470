"""The runner's stopping rule: the confidence interval of the median.

One specification, two implementations: Python's (aiot_runner.py, which the host's summary in
measure/stats.py uses too) and C++'s (native/src/stats.cpp: a phone has no Python). The same
sample vectors go through both and must give identical answers, to the last bit.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess

import pytest

from pytest_aiotbench.measure.stats import summarize
from pytest_aiotbench.runner.aiot_runner import (
    _median_of_sorted,
    _normal_quantile,
    median_confidence_bounds,
    median_relative_half_width,
)
from pytest_aiotbench.runner.native.build import NativeBuilder


def binomial_coverage(n: int, lower: int, upper: int) -> float:
    """P(order statistics lower..upper, 0-based, bracket the true median)."""
    # The interval [x_(lower), x_(upper)] misses when fewer than lower+1 or more than upper
    # samples fall below the median; the count below is Binomial(n, 1/2).
    return sum(math.comb(n, k) for k in range(lower + 1, upper + 1)) / 2**n


@pytest.mark.parametrize("n", [10, 20, 50, 100, 333, 1000, 5000])
def test_median_interval_covers_at_least_the_confidence(n):
    lower, upper = median_confidence_bounds(n, 0.95)
    assert 0 <= lower < upper <= n - 1
    assert binomial_coverage(n, lower, upper) >= 0.95


def test_median_interval_is_not_wastefully_wide():
    lower, upper = median_confidence_bounds(1000, 0.95)
    # The exact 95% interval for n=1000 spans ranks about 469..531.
    assert 465 <= lower <= 470 and 530 <= upper <= 535


def test_normal_quantile_matches_known_values():
    assert _normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert _normal_quantile(0.5) == pytest.approx(0.0, abs=1e-12)
    assert _normal_quantile(0.001) == pytest.approx(-3.090232, abs=1e-6)


def test_relative_half_width_shrinks_with_more_samples():
    rng = random.Random(1)
    few = [0.01 * (1 + rng.gauss(0, 0.05)) for _ in range(20)]
    many = few + [0.01 * (1 + rng.gauss(0, 0.05)) for _ in range(2000)]
    assert median_relative_half_width(many) < median_relative_half_width(few) / 3


def test_summary_keeps_the_order_statistics_straight():
    samples = [0.003, 0.001, 0.002, 0.004, 0.100] * 4
    stats = summarize(samples)
    assert stats.n == 20
    assert stats.median_s == pytest.approx(0.003)
    assert stats.min_s == 0.001 and stats.max_s == 0.1
    assert stats.median_ci_low_s <= stats.median_s <= stats.median_ci_high_s
    assert stats.p90_s <= stats.p99_s <= stats.max_s


# ------------------------------------------------------------- Python and C++ agree
def sample_vectors() -> list[list[float]]:
    """Sizes around the rule's edges (1, 2, odd, even, the first check at 10, large), ties,
    a zero median (infinite width), skewed and bimodal latencies."""
    rng = random.Random(7)
    vectors = [[0.004], [0.004, 0.002], [0.003] * 7, [0.0] * 4, [0.0, 0.0, 0.0, 1e-3],
               [1e-3, 1e-3, 2e-3, 2e-3, 5e-3, 5e-3]]
    for n in (3, 5, 10, 11, 37, 100, 333, 1000, 4001):
        vectors.append([0.004 * (1 + abs(rng.gauss(0, 0.2))) for _ in range(n)])
        vectors.append([rng.choice((0.002, 0.009)) * rng.lognormvariate(0, 0.1)
                        for _ in range(n)])
    return vectors


PROBABILITIES = [1e-9, 0.001, 0.02, 0.02425, 0.1, 0.5, 0.8, 0.95, 0.975, 0.995, 0.999999]


@pytest.fixture(scope="module")
def native_statistics(artifact_cache):
    """The C++ statistics, asked through a real native runner's --statistics hook."""
    runner = NativeBuilder(artifact_cache, progress=lambda line: None).build("tflite")
    env = {**os.environ, "LD_LIBRARY_PATH": str(runner.executable.parent.parent / "lib")}

    def ask(samples: list[float], confidence: float) -> dict:
        query = {"samples": samples, "confidence_level": confidence,
                 "probabilities": PROBABILITIES}
        done = subprocess.run([str(runner.executable), "--statistics"], env=env, text=True,
                              input=json.dumps(query), capture_output=True, timeout=60,
                              check=True)
        return json.loads(done.stdout)

    return ask


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_the_native_statistics_are_the_python_ones(native_statistics, confidence):
    for samples in sample_vectors():
        native = native_statistics(samples, confidence)
        lower, upper = median_confidence_bounds(len(samples), confidence)
        width = median_relative_half_width(samples, confidence)
        assert (native["lower"], native["upper"]) == (lower, upper), len(samples)
        assert float(native["median"]) == _median_of_sorted(sorted(samples))
        assert float(native["relative_half_width"]) == width, len(samples)
        assert [float(q) for q in native["normal_quantiles"]] == [
            _normal_quantile(p) for p in PROBABILITIES]


def test_the_hosts_summary_takes_the_runners_median_and_bounds():
    """The host's summary (measure/stats.py) and the runners' stopping rule are one
    specification: the same median and the same order statistics as its interval."""
    for samples in sample_vectors():
        stats = summarize(samples)
        ordered = sorted(samples)
        lower, upper = median_confidence_bounds(len(samples))
        assert stats.median_s == _median_of_sorted(ordered)
        assert (stats.median_ci_low_s, stats.median_ci_high_s) == (ordered[lower],
                                                                   ordered[upper])
