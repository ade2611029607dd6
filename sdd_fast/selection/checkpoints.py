"""Label-free checkpoint selection from DSE components (SPEC "Model selection").

    from sdd_fast.selection import select_checkpoints
    chosen = select_checkpoints(rows)          # rows: [{"step", "inter", "intra_image", ...}, ...]
    chosen.steps, chosen.lambda_

1. Recombination: intra = (intra_image + intra_batch) / 2,
   lambda = std(inter - intra) / std(dim) (population std; 0 when dim is constant),
   P = inter - intra + lambda * dim. `recombine=False` uses the plain DSE (lambda = 1).
2. i is a candidate when P[i] is the maximum of P[max(0, i-2) : i+3]; candidates are ranked
   by P (ties: earlier first) and the top `top` returned. Fewer than 3 checkpoints: argmax.
Checkpoints with a non-finite component get a NaN score: never chosen, and they never
hide a neighbour in the window.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core.options import COMPONENTS

WINDOW_RADIUS = 2  # the window P[i-2 : i+3]
DEFAULT_TOP = 3


class Selection(NamedTuple):
    """Chosen checkpoints, best first.

    indices: positions in the series; steps: their steps; scores: the score of EVERY
    checkpoint of the series (in series order); lambda_: the weight of dim (1 for plain DSE).
    """

    indices: list
    steps: list
    scores: list
    lambda_: float

    def to_dict(self) -> dict:
        """JSON-ready dict: selected (steps), indices, scores (NaN -> None), lambda."""
        return {"selected": list(self.steps), "indices": list(self.indices),
                "scores": [None if not math.isfinite(s) else s for s in self.scores], "lambda": self.lambda_}


def _column(values) -> np.ndarray:
    """float64 array of a sequence; None (JSON null) becomes NaN."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def series_columns(series, keys) -> dict:
    """{key: float64 array [T]} and "step" ([T] ints; 0..T-1 when absent) of a series.

    Args:
        series: a list of row dicts or a dict of columns (sequences of equal length T).
        keys: the columns needed (KeyError naming the first missing one).
    """
    if isinstance(series, dict):
        length = len(next(iter(series.values()))) if series else 0
        get = series.__getitem__
        has_step = "step" in series
    else:
        rows = list(series)
        length = len(rows)
        has_step = all("step" in row for row in rows)

        def get(key):
            missing = [i for i, row in enumerate(rows) if key not in row]
            if missing:
                raise KeyError(f"row {missing[0]} of the series has no {key!r}")
            return [row[key] for row in rows]

    columns = {key: _column(get(key)) for key in keys}
    columns["step"] = [int(s) for s in get("step")] if has_step else list(range(length))
    if any(len(c) != length for c in columns.values()):
        raise ValueError("the series' columns differ in length")
    return columns


def recombined_scores(inter, intra_image, intra_batch, dim) -> tuple:
    """The paper's recombined score P of every checkpoint, and its lambda.

    Args:
        inter, intra_image, intra_batch, dim (sequence[T] of float): DSE components per checkpoint.

    Returns:
        (scores np.ndarray[T] float64, lambda float). lambda = std(inter - intra) / std(dim)
        over the checkpoints whose components are all finite; 0 when dim is constant there.
    """
    inter, intra_image, intra_batch, dim = (_column(list(c)) for c in (inter, intra_image, intra_batch, dim))
    if not len(inter) == len(intra_image) == len(intra_batch) == len(dim):
        raise ValueError("inter, intra_image, intra_batch and dim differ in length")
    relevance = inter - (intra_image + intra_batch) / 2
    finite = np.isfinite(relevance) & np.isfinite(dim)
    lam = 0.0
    if finite.any() and np.ptp(dim[finite]) > 0:  # ptp, not std == 0: np.std of equal values can be 1e-17
        lam = float(np.std(relevance[finite]) / np.std(dim[finite]))
    scores = relevance + lam * dim
    scores[~finite] = math.nan  # an Inf component makes the score undefined, not +-Inf
    return scores, lam


def window_candidates(scores, radius: int = WINDOW_RADIUS) -> list:
    """Indices i whose finite score is the maximum of the finite scores in [i - radius, i + radius]."""
    scores = _column(list(scores))
    found = []
    for i, value in enumerate(scores):
        window = scores[max(0, i - radius):i + radius + 1]
        if math.isfinite(value) and value >= np.max(window[np.isfinite(window)]):
            found.append(i)
    return found


def select_checkpoints(series, top: int = DEFAULT_TOP, recombine: bool = True) -> Selection:
    """Chooses checkpoints without labels (SPEC "Model selection").

    Args:
        series: T checkpoints in step order, as a list of row dicts or a dict of columns, with
            "inter", "intra_image", "intra_batch", "dim" (recombine) or "dse" (plain), and
            optionally "step" (default 0..T-1).
        top (int): how many candidates to return at most.
        recombine (bool): the paper's recombined score (default) or the plain per-call DSE.

    Returns:
        Selection(indices, steps, scores, lambda_), best first.
    """
    if top < 1:
        raise ValueError(f"top must be >= 1; got {top}")
    if recombine:
        cols = series_columns(series, COMPONENTS)
        scores, lam = recombined_scores(*(cols[key] for key in COMPONENTS))
    else:
        cols = series_columns(series, ("dse",))
        scores, lam = np.where(np.isfinite(cols["dse"]), cols["dse"], math.nan), 1.0
    steps = cols["step"]
    if len(steps) == 0:
        raise ValueError("the series is empty: no checkpoints to select from")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError("the series must be ordered by strictly increasing step")
    finite = [i for i in range(len(scores)) if math.isfinite(scores[i])]
    if not finite:
        chosen = []
    elif len(scores) < 3:
        chosen = [max(finite, key=lambda i: (scores[i], -i))]  # argmax, earlier on ties
    else:
        chosen = sorted(window_candidates(scores), key=lambda i: (-scores[i], i))[:top]
    return Selection(indices=chosen, steps=[steps[i] for i in chosen], scores=[float(s) for s in scores],
                     lambda_=lam)


def kendall_tau(a, b) -> float:
    """Kendall's tau-b between two sequences[T] (scipy), over the positions where both are
    finite; NaN when undefined (fewer than 2 such positions, or a constant sequence)."""
    from scipy.stats import kendalltau

    a, b = _column(list(a)), _column(list(b))
    if len(a) != len(b):
        raise ValueError(f"kendall_tau: lengths {len(a)} and {len(b)} differ")
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
        return float(kendalltau(a[keep], b[keep]).statistic)


# ---- a run's series ----------------------------------------------------------------------------


def load_series(run_dir) -> tuple:
    """(rows by step, source name) of a run: OUT/eval.jsonl if it has rows, else OUT/metrics.jsonl.

    From metrics.jsonl, rows without DSE are dropped, the last row of a step wins, and when
    the run has checkpoints only the rows of checkpointed steps are kept (if there are any).
    Raises FileNotFoundError when neither file has rows with DSE.
    """
    from ..train.checkpoint import list_checkpoints
    from ..utils.jsonl import read_jsonl

    run_dir = Path(run_dir)
    needed = ("dse",) + COMPONENTS
    rows = [r for r in read_jsonl(run_dir / "eval.jsonl") if all(r.get(k) is not None for k in needed)]
    if rows:
        return sorted(rows, key=lambda r: r["step"]), "eval.jsonl"
    by_step = {int(r["step"]): r for r in read_jsonl(run_dir / "metrics.jsonl")
               if "step" in r and all(r.get(k) is not None for k in needed)}
    if not by_step:
        raise FileNotFoundError(f"{run_dir} has no eval.jsonl or metrics.jsonl rows with DSE "
                                "(train with --dse-every > 0, or run `sdd-fast eval`)")
    saved = {step for step, _ in list_checkpoints(run_dir)}
    if saved & by_step.keys():
        by_step = {step: row for step, row in by_step.items() if step in saved}
        source = "metrics.jsonl (checkpointed steps)"
    else:
        source = "metrics.jsonl (all logged steps)"
    return [by_step[step] for step in sorted(by_step)], source
