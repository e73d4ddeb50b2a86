"""The statistics of the verdict: Wilson bound, bootstrap CI of a p95 difference, Fisher exact.

Written out with numpy and the standard library: importing scipy.stats costs seconds per run.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

from kgents_pipeline.verdict.model import VerdictPolicy

if TYPE_CHECKING:
    import numpy as np


def wilson_upper(errors: int, total: int, confidence: float) -> float:
    """Upper bound of the Wilson score interval (two-sided `confidence`)."""
    if total <= 0:
        return 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = errors / total
    z2n = z * z / total
    centre = p + z2n / 2
    spread = z * math.sqrt(p * (1 - p) / total + z2n / (4 * total))
    return min(1.0, (centre + spread) / (1 + z2n))


def bootstrap_p95(
    sorted_values: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """`resamples` draws of the p95 (linear interpolation) of a bootstrap resample, exactly, in
    O(resamples) rather than O(resamples * n).

    A resample of a sorted sample is `sorted_values[I]` with I iid uniform ranks, and its k-th
    smallest value is `sorted_values[I_(k)]`. I = floor(n U) with U uniform, so the ranks' order
    statistics are floor(n U_(k)) with U_(k) ~ Beta(k, n - k + 1); the next one up is
    U_(k) + (1 - U_(k)) Beta(1, n - k). Same distribution as resampling, without the resamples.
    """
    import numpy as np

    n = len(sorted_values)
    h = 0.95 * (n - 1)
    lo = math.floor(h)
    frac = h - lo
    k = lo + 1  # 1-based rank of the lower order statistic
    u1 = rng.beta(k, n - k + 1, size=resamples)
    u2 = u1 + (1 - u1) * rng.beta(1, n - k, size=resamples) if frac > 0 else u1
    i1 = np.minimum((u1 * n).astype(np.int64), n - 1)
    i2 = np.minimum((u2 * n).astype(np.int64), n - 1)
    draws: np.ndarray = sorted_values[i1] + frac * (sorted_values[i2] - sorted_values[i1])
    return draws


def p95_difference_ci(
    current: np.ndarray, baseline: np.ndarray, policy: VerdictPolicy
) -> tuple[float, float, float]:
    """(p95(current) - p95(baseline), lower, upper): one-sided (1 - alpha) percentile bootstrap
    bounds of the difference, fixed seed."""
    import numpy as np

    cur, base = np.sort(current), np.sort(baseline)
    diff = float(np.quantile(cur, 0.95) - np.quantile(base, 0.95))
    rng = np.random.default_rng(policy.seed)
    d = bootstrap_p95(cur, policy.bootstrap_resamples, rng) - bootstrap_p95(
        base, policy.bootstrap_resamples, rng
    )
    lo, hi = np.quantile(d, [policy.alpha, 1 - policy.alpha])
    return diff, float(lo), float(hi)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def error_increase_pvalue(cur_err: int, cur_n: int, base_err: int, base_n: int) -> float:
    """One-sided Fisher exact test: is the current error proportion greater than the baseline's?

    P(X >= cur_err) for X ~ Hypergeometric(cur_n + base_n items, cur_err + base_err errors,
    cur_n drawn), summed in log space (written out: importing scipy.stats costs seconds).
    """
    total, errors = cur_n + base_n, cur_err + base_err
    log_denominator = _log_choose(total, cur_n)
    upper = min(errors, cur_n)
    tail = sum(
        math.exp(_log_choose(errors, x) + _log_choose(total - errors, cur_n - x) - log_denominator)
        for x in range(cur_err, upper + 1)
        if cur_n - x <= total - errors
    )
    return min(1.0, tail)
