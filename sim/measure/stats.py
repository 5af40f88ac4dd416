"""Small statistics helpers: seed-level confidence intervals, weighted percentiles and ECDFs.

The Student t quantile comes from SciPy; sim.runs.sweep and sim.measure.metrics use these helpers too, so
the CLI's tables, the summaries and the plots agree to the last digit.

Confidence intervals in figures and reports are `bounded_mean_ci`: the Student t interval of
the mean over seeds (the seeds are the independent replications; records within a run are not
independent, so a binomial interval over records, Wilson or Clopper-Pearson, would be far too
narrow), clipped to what the quantity can be (a count, rate or latency is never below 0, a share
never above 1), and flagged when it was clipped so a figure or table can say so. With 2 or 3
seeds the t interval is wide, which is the honest answer; a bootstrap percentile interval over
2 or 3 values would only repeat the smallest and largest value seen.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["t_quantile", "mean_ci", "bounded_mean_ci", "weighted_percentiles", "weighted_ecdf", "ecdf_points"]


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided Student t critical value: P(|T| <= q) = confidence (scipy.stats.t)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    from scipy.stats import t as student_t  # imported on first use: SciPy is slow to import

    return float(student_t.ppf((1.0 + confidence) / 2.0, df))


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of independent replications (seeds) and its t confidence interval: (mean, low, high, n).

    NaN values are ignored. With one value the interval is undefined (NaN, NaN).
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n == 1:
        return (mean, math.nan, math.nan, 1)
    half = t_quantile(confidence, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return (mean, mean - half, mean + half, n)


def bounded_mean_ci(values, confidence: float = 0.95, lower: float | None = 0.0,
                    upper: float | None = None) -> tuple[float, float, float, int, bool]:
    """`mean_ci` with the interval clipped to [lower, upper]: (mean, low, high, n, clipped).

    ``clipped`` is True when the Student t interval reached past a bound and was cut there (the
    mean never is: it is an average of values within the bounds). Use ``lower=None`` /
    ``upper=None`` for no bound on that side.
    """
    mean, lo, hi, n = mean_ci(values, confidence)
    clipped = False
    if lower is not None and not math.isnan(lo) and lo < lower:
        lo, clipped = float(lower), True
    if upper is not None and not math.isnan(hi) and hi > upper:
        hi, clipped = float(upper), True
    return mean, lo, hi, n, clipped


def weighted_percentiles(values, weights, qs) -> list[float]:
    """Percentiles (0..100) of `values` where each value counts `weights` times.

    The smallest value whose cumulative weight reaches q% of the total: the definition
    the simulator's summary uses, so the numbers agree exactly.
    """
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if len(values) == 0 or weights.sum() <= 0:
        return [math.nan for _ in qs]
    order = np.argsort(values, kind="stable")
    v, w = values[order], np.cumsum(weights[order])
    total = w[-1]
    out = []
    for q in qs:
        i = int(np.searchsorted(w, q / 100.0 * total, side="left"))
        out.append(float(v[min(i, len(v) - 1)]))
    return out


def weighted_ecdf(values, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF: sorted distinct values and the weight fraction at or below each."""
    values = np.asarray(values, dtype=float)
    weights = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
    keep = ~np.isnan(values)
    values, weights = values[keep], weights[keep]
    if len(values) == 0 or weights.sum() <= 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(values, kind="stable")
    v, w = values[order], np.cumsum(weights[order])
    last = np.r_[v[1:] != v[:-1], True]  # the last of each run of equal values
    return v[last], w[last] / w[-1]


def ecdf_points(x: np.ndarray, y: np.ndarray, max_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points of an ECDF, kept evenly in probability plus the whole last 1 %.

    Every kept point is an exact point of the ECDF (nothing is interpolated), so a plot drawn
    from them is exact at every vertex and the tail that matters for p99 keeps full detail.
    """
    if len(x) <= max_points:
        return x, y
    levels = np.linspace(0.0, 1.0, max_points // 2 + 1)
    idx = np.searchsorted(y, levels, side="left")
    tail_from = int(np.searchsorted(y, 0.99, side="left"))
    tail = np.arange(tail_from, len(y))
    if len(tail) > max_points // 2:
        tail = tail[np.linspace(0, len(tail) - 1, max_points // 2).astype(int)]
    keep = np.unique(np.clip(np.r_[0, idx, tail, len(y) - 1], 0, len(y) - 1))
    return x[keep], y[keep]
