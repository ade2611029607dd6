"""Causal recombination: the recombined score of SPEC "Model selection", one evaluation at a time.

    from sdd_fast.selection import CausalSelector
    selector = CausalSelector(warmup=10, smoothing=3)
    for row in rows:            # {"step", "inter", "intra_image", "intra_batch", "dim"}, in step order
        selector.update(row)
        selector.score, selector.smoothed, selector.best_step, selector.best, selector.lambda_

The offline selection weighs dim by lambda = std(relevance) / std(dim) over the whole run
(relevance = inter - (intra_image + intra_batch) / 2, population std, 0 when dim is constant).
Here lambda is that quantity over the evaluations seen so far, from running (Welford) moments:
after the last evaluation it equals `select_checkpoints(rows).lambda_`.

- Warm-up: the first `warmup` finite evaluations are scored by the plain DSE
  (relevance + dim, weight 1): a ratio of two stds over a handful of points is noise.
- Smoothed score: the MEDIAN of the scores of the last `smoothing` finite evaluations, all
  weighed with the current lambda. A median, not an EMA: one odd evaluation (a bad k-means
  draw) does not move it, and every score in it uses the same lambda (an EMA would mix scores
  weighed with the lambdas of their time).
- Best: the highest smoothed score, and its step, among the evaluations marked `eligible`
  (default: all; the trainer marks its checkpoint steps, so the best is one it can reload),
  re-judged under the current lambda at every update (ties: the earlier).
- Spread: population std of the scores of all finite evaluations under the current weight.
  Only lambda comes from the running moments (Welford means and M2 of relevance and dim).

Evaluations with a non-finite component are skipped (counted in `skipped`), as the offline
selection leaves them out of lambda. The history (step, relevance, dim, eligible: 4 numbers per
evaluation) is kept, so the best and the smoothed scores can be re-weighed: O(T) per update.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.options import COMPONENTS  # inter, intra_image, intra_batch, dim

_MOMENTS = ("n", "mean_r", "mean_d", "m2_r", "m2_d", "min_d", "max_d")


class CausalSelector:
    """Running recombined score of a run's DSE evaluations (see the module docstring).

    Args:
        warmup (int): evaluations scored by the plain DSE before the recombined score (>= 0).
        smoothing (int): the smoothed score is the median of the last `smoothing` scores (>= 1).
    """

    def __init__(self, warmup: int = 10, smoothing: int = 3):
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0; got {warmup}")
        if smoothing < 1:
            raise ValueError(f"smoothing must be >= 1; got {smoothing}")
        self.warmup, self.smoothing = int(warmup), int(smoothing)
        self.n, self.mean_r, self.mean_d, self.m2_r, self.m2_d = 0, 0.0, 0.0, 0.0, 0.0
        self.min_d, self.max_d = math.inf, -math.inf
        self.steps, self.relevance, self.dim, self.eligible = [], [], [], []  # [T] each
        self.starts = [0]  # history indices where a smoothing window begins (restart_window)
        self.skipped = 0

    # ---- feeding ---------------------------------------------------------------------------------
    def update(self, row, eligible: bool = True) -> bool:
        """Adds one evaluation: a mapping with "step" and the DSE components (COMPONENTS).

        Returns False (and changes nothing but `skipped`) when a component is not finite.
        """
        values = [row[key] for key in COMPONENTS]
        if any(v is None or not math.isfinite(float(v)) for v in values):
            self.skipped += 1
            return False
        inter, intra_image, intra_batch, dim = (float(v) for v in values)
        r = inter - (intra_image + intra_batch) / 2
        # Welford: running means and second moments of relevance and dim
        self.n += 1
        dr, dd = r - self.mean_r, dim - self.mean_d
        self.mean_r += dr / self.n
        self.mean_d += dd / self.n
        self.m2_r += dr * (r - self.mean_r)
        self.m2_d += dd * (dim - self.mean_d)
        self.min_d, self.max_d = min(self.min_d, dim), max(self.max_d, dim)
        self.steps.append(int(row["step"]))
        self.relevance.append(r)
        self.dim.append(dim)
        self.eligible.append(bool(eligible))
        return True

    def restart_window(self) -> None:
        """The next smoothed scores use only evaluations from now on (after a rollback: the
        scores of the abandoned weights must not drag the reloaded ones down)."""
        if self.starts[-1] != self.n:
            self.starts.append(self.n)

    # ---- the statistics ------------------------------------------------------------------------
    @property
    def lambda_(self) -> float:
        """std(relevance) / std(dim) over the evaluations so far; 0 when dim is constant (or none)."""
        if self.n == 0 or not self.max_d > self.min_d:  # as the offline ptp test: exactly constant -> 0
            return 0.0
        return math.sqrt(self.m2_r / self.m2_d)

    @property
    def in_warmup(self) -> bool:
        """Whether scores are still the plain DSE: the latest evaluation is among the first `warmup`."""
        return self.warmup > 0 and self.n <= self.warmup

    @property
    def weight(self) -> float:
        """The weight of dim in the current scores: 1 in the warm-up, then lambda."""
        return 1.0 if self.in_warmup else self.lambda_

    @property
    def spread(self) -> float:
        """Population std of the scores of all evaluations so far (0 with fewer than 2).

        From the history, not from the moments: var r + w^2 var d + 2 w cov cancels to
        rounding noise when relevance and dim are (nearly) perfectly anti-correlated."""
        return float(np.std(self.scores())) if self.n >= 2 else 0.0

    def scores(self) -> np.ndarray:
        """float64 [T]: every evaluation's score under the current weight."""
        return np.asarray(self.relevance, dtype=np.float64) + self.weight * np.asarray(self.dim, dtype=np.float64)

    def smoothed_scores(self) -> np.ndarray:
        """float64 [T]: median of each evaluation's window (the last `smoothing` scores, not
        reaching back past a `restart_window`)."""
        scores = self.scores()
        t = len(scores)
        if t == 0:
            return scores
        index = np.arange(t)
        first = np.asarray(self.starts)[np.searchsorted(self.starts, index, side="right") - 1]  # [T]
        window = np.full((t, self.smoothing), np.nan)  # [T, smoothing]: scores i, i-1, ... inside the window
        for lag in range(self.smoothing):
            inside = index - lag >= first
            window[inside, lag] = scores[index[inside] - lag]
        return np.nanmedian(window, axis=1)

    @property
    def score(self) -> float:
        """The latest evaluation's score (NaN before any)."""
        return float(self.relevance[-1] + self.weight * self.dim[-1]) if self.n else math.nan

    @property
    def smoothed(self) -> float:
        """The latest evaluation's smoothed score (NaN before any)."""
        return float(self.smoothed_scores()[-1]) if self.n else math.nan

    def best_index(self):
        """History index of the best smoothed score among eligible evaluations, or None."""
        eligible = np.flatnonzero(self.eligible)
        if len(eligible) == 0:
            return None
        smoothed = self.smoothed_scores()[eligible]
        return int(eligible[int(np.argmax(smoothed))])  # argmax: the first of equal maxima

    @property
    def best_step(self):
        """Step of the best eligible evaluation, or None."""
        i = self.best_index()
        return None if i is None else self.steps[i]

    @property
    def best(self) -> float:
        """The best eligible smoothed score (NaN when there is none)."""
        i = self.best_index()
        return math.nan if i is None else float(self.smoothed_scores()[i])

    # ---- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain-Python state (moments and history); `load_state_dict` continues identically."""
        state = {name: getattr(self, name) for name in _MOMENTS}
        state.update(steps=list(self.steps), relevance=list(self.relevance), dim=list(self.dim),
                     eligible=list(self.eligible), starts=list(self.starts), skipped=self.skipped,
                     warmup=self.warmup, smoothing=self.smoothing)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restores `state_dict()`; `warmup` and `smoothing` stay this selector's own (the
        history is kept, so changed settings apply to it)."""
        for name in _MOMENTS:
            setattr(self, name, state[name])
        self.steps, self.relevance = list(state["steps"]), list(state["relevance"])
        self.dim, self.eligible = list(state["dim"]), list(state["eligible"])
        self.starts, self.skipped = list(state["starts"]), int(state["skipped"])
