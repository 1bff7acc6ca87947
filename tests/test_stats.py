"""Intervals: the sequence bootstrap against a hand computation and against scipy."""

import numpy as np
import pytest
from scipy import stats
from vestige.stats import mean_ci, ratio_interval, resample_counts


def test_resample_counts_draw_each_resample_with_replacement():
    counts = resample_counts(7, n_resamples=50, seed=3)
    assert counts.shape == (50, 7)
    assert (counts.sum(1) == 7).all() and (counts >= 0).all()
    assert (resample_counts(7, 50, seed=3) == counts).all()
    assert counts.std(0).min() > 0  # every sequence varies across resamples


def test_ratio_interval_equals_a_loop_over_resamples():
    rng = np.random.default_rng(0)
    positions = rng.integers(1, 4, size=20).astype(float)  # positions per sequence
    sums = rng.normal(0.3, 0.2, size=(2, 20)) * positions  # two statistics, same resamples
    resamples = resample_counts(20, 400, seed=1)
    low, high = ratio_interval(sums, positions, resamples)
    for row in range(2):
        estimates = []
        for counts in resamples:
            drawn = np.repeat(np.arange(20), counts.astype(int))
            estimates.append(sums[row, drawn].sum() / positions[drawn].sum())
        assert low[row] == pytest.approx(np.quantile(estimates, 0.025))
        assert high[row] == pytest.approx(np.quantile(estimates, 0.975))


def test_ratio_interval_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    positions = rng.integers(1, 5, size=300).astype(float)
    sums = rng.normal(0.2, 0.5, size=300) * positions
    low, high = ratio_interval(sums, positions, resample_counts(300, 4000, seed=2))
    ref = stats.bootstrap(
        (sums, positions),
        lambda s, c, axis=-1: s.sum(axis) / c.sum(axis),
        paired=True,
        vectorized=True,
        n_resamples=4000,
        method="percentile",
        random_state=5,
    ).confidence_interval
    width = ref.high - ref.low
    assert abs(low - ref.low) < 0.1 * width and abs(high - ref.high) < 0.1 * width


def test_mean_ci_is_the_t_interval_and_drops_missing_values():
    values = [0.1, 0.4, 0.2, 0.35, None, float("nan")]
    ci = mean_ci(values)
    x = np.array([0.1, 0.4, 0.2, 0.35])
    half = stats.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert ci["n"] == 4 and ci["mean"] == pytest.approx(x.mean())
    assert (ci["low"], ci["high"]) == pytest.approx((x.mean() - half, x.mean() + half))
    assert mean_ci([1.0])["n"] == 1 and np.isnan(mean_ci([1.0])["low"])
    assert mean_ci([])["n"] == 0
