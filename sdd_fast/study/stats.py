"""Means over seeds with 95 % bootstrap intervals (numpy, a fixed bootstrap seed).

A statistic is computed per seed (e.g. Kendall's tau over that seed's checkpoints) and averaged
over seeds. Its interval comes from a two-level (hierarchical) bootstrap: each resample draws
the seeds with replacement and, inside every drawn seed, its items (checkpoints) with
replacement, recomputes the statistic per drawn seed and averages; the interval is the 2.5th
and 97.5th percentile of those averages. With one item per seed (a scalar such as a selection
gain) only the seeds are resampled. Non-finite per-seed values are left out of every mean.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ..selection.checkpoints import kendall_tau

RESAMPLES = 2000
BOOTSTRAP_SEED = 20251018
LEVEL = 0.95


def _mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


def per_seed_tau(groups: Sequence) -> list:
    """Kendall tau-b of each seed's (metric, miou) pairs: `groups` is a list (seeds) of [T, 2] arrays."""
    return [kendall_tau(np.asarray(g)[:, 0], np.asarray(g)[:, 1]) if len(g) else math.nan for g in groups]


def bootstrap_draws(groups: Sequence, statistic: Callable, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                    within: bool = True) -> np.ndarray:
    """float64 [resamples]: the mean over seeds of `statistic` in each two-level resample.

    Args:
        groups: one array per seed whose rows are the items resampled within that seed.
        statistic: items array -> float (e.g. tau of column 0 against column 1).
        within: also resample the items inside each drawn seed (False: only the seeds).
    """
    rng = np.random.default_rng(seed)
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    draws = np.full(resamples, np.nan)
    if not groups:
        return draws
    for r in range(resamples):
        chosen = rng.integers(0, len(groups), size=len(groups))
        values = []
        for i in chosen:
            items = groups[i]
            if within and len(items) > 1:
                items = items[rng.integers(0, len(items), size=len(items))]
            values.append(statistic(items))
        draws[r] = _mean(values)
    return draws


def interval(draws, level: float = LEVEL) -> tuple:
    """(low, high) percentile interval of the finite draws; (NaN, NaN) when there are none."""
    draws = np.asarray(draws, dtype=np.float64)
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def summary(point: float, draws) -> dict:
    """{"mean", "low", "high", "draws"}: a point estimate with its interval (draws kept for averages)."""
    low, high = interval(draws)
    return {"mean": point, "low": low, "high": high, "draws": np.asarray(draws, dtype=np.float64)}


def tau_summary(groups: Sequence, **options) -> dict:
    """Mean over seeds of Kendall's tau (column 0 vs column 1 of each seed's [T, 2] array),
    with its two-level bootstrap interval (see the module docstring)."""
    point = _mean(per_seed_tau(groups))
    draws = bootstrap_draws(groups, lambda items: kendall_tau(items[:, 0], items[:, 1]), **options)
    return summary(point, draws)


def scalar_summary(values: Sequence, **options) -> dict:
    """Mean over seeds of one number per seed, with the seeds-only bootstrap interval."""
    groups = [np.asarray([[v]], dtype=np.float64) for v in values]
    draws = bootstrap_draws(groups, lambda items: float(items[0, 0]), within=False, **options)
    return summary(_mean(values), draws)


def average_summaries(parts: Sequence) -> dict:
    """Mean of several summaries (e.g. over methods): the mean of their points, the interval of
    the element-wise mean of their bootstrap draws (all drawn with the same bootstrap seed, so
    resample r draws the same seed indices for every part: a paired bootstrap over seeds)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return summary(math.nan, [])
    stacked = np.vstack([p["draws"] for p in parts])  # [P, resamples]
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(stacked)
        counts = finite.sum(0)
        draws = np.where(counts > 0, np.where(finite, stacked, 0).sum(0) / np.maximum(counts, 1), np.nan)
    return summary(_mean([p["mean"] for p in parts]), draws)


def public(result: dict) -> dict:
    """A summary without its draws (for study.json)."""
    return {key: value for key, value in result.items() if key != "draws"}
