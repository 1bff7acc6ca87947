"""Intervals and tests: a bootstrap over evaluation sequences, a t-interval over seeds,
exact intervals on rates, Fisher's exact test, and Holm's correction (the last three are
scipy's and statsmodels', wrapped to return plain data for summaries).

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


def rate(k: int, n: int, level: float = LEVEL) -> dict[str, float]:
    """k of n with its exact (Clopper-Pearson) interval."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": float("nan"), "low": float("nan"), "high": float("nan")}
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return {"k": int(k), "n": int(n), "rate": k / n, "low": float(ci.low), "high": float(ci.high)}


def fisher(k1: int, n1: int, k2: int, n2: int) -> dict[str, float]:
    """Fisher's exact test of k1/n1 against k2/n2: the one-sided p that the first rate is
    higher, the two-sided p, and the sample odds ratio."""
    table = [[k1, n1 - k1], [k2, n2 - k2]]
    odds, two_sided = stats.fisher_exact(table)
    _, greater = stats.fisher_exact(table, alternative="greater")
    return {"odds_ratio": float(odds), "p_greater": float(greater), "p_two_sided": float(two_sided)}


def paired_test(deltas: Iterable[float | None], level: float = LEVEL) -> dict[str, float]:
    """`mean_ci` of paired differences over seeds, with the two-sided p of the one-sample
    t-test that their mean is 0 (NaN with fewer than two)."""
    x = np.array([v for v in deltas if v is not None and not math.isnan(v)], dtype=float)
    out = mean_ci(x, level)
    out["p"] = (
        float(stats.ttest_1samp(x, 0.0).pvalue) if len(x) > 1 and x.std() > 0 else float("nan")
    )
    return out


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values of a family of tests ({name: p}; NaNs are left out)."""
    from statsmodels.stats.multitest import multipletests

    names = [k for k, p in p_values.items() if not math.isnan(p)]
    if not names:
        return {k: float("nan") for k in p_values}
    adjusted = multipletests([p_values[k] for k in names], method="holm")[1]
    out = {k: float("nan") for k in p_values}
    out.update({k: float(a) for k, a in zip(names, adjusted)})
    return out
