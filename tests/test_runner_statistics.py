"""The runner's stopping rule: the confidence interval of the median."""

from __future__ import annotations

import math
import random

import pytest

from pytest_aiotbench.measure.stats import summarize
from pytest_aiotbench.runner.aiot_runner import (
    _normal_quantile,
    median_confidence_bounds,
    median_relative_half_width,
)


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
