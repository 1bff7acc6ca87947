"""Intervals: a bootstrap over evaluation sequences, and a t-interval over seeds.

The bootstrap is written out (a resample-count matrix times per-sequence sums) rather than
called through `scipy.stats.bootstrap`, because one run needs it for thousands of ratio
statistics that share one set of resamples; a test checks it against scipy's percentile
interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import stats

LEVEL = 0.95


def resample_counts(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """How often each of `n` sequences is drawn in each resample: [n_resamples, n]."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_resamples, n))
    counts = np.zeros((n_resamples, n))
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1)
    return counts


def ratio_interval(
    sums: np.ndarray, counts: np.ndarray, resamples: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of sum(sums) / sum(counts), resampling sequences.

    `sums` [..., n] is a per-sequence total (e.g. of loss increases over the positions that
    count), `counts` [n] how many positions each sequence has, `resamples` from
    `resample_counts`. Returns (low, high), each of shape `sums.shape[:-1]`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        estimates = (sums @ resamples.T) / (resamples @ counts)
    tail = (1 - level) / 2
    low, high = np.nanquantile(estimates, [tail, 1 - tail], axis=-1)
    return low, high


def mean_ci(values: Iterable[float | None], level: float = LEVEL) -> dict[str, float]:
    """Mean and t-interval of `values` over seeds (None and NaN dropped)."""
    x = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    nan = float("nan")
    if len(x) == 0:
        return {"n": 0, "mean": nan, "low": nan, "high": nan}
    if len(x) == 1:
        return {"n": 1, "mean": float(x[0]), "low": nan, "high": nan}
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return {
        "n": int(len(x)),
        "mean": float(x.mean()),
        "low": float(x.mean() - half),
        "high": float(x.mean() + half),
    }
