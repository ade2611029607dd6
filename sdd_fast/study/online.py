"""The degradation alarm in the study: when `--on-degrade warn` first fires, and the online pick.

The training runs of the study use `--on-degrade warn`: the alarm watches the DSE of every
training step (metrics.jsonl) and marks the row where it fires (`"alarm": "warn"`). The
online pick is what a run could have kept without labels at that moment: the causal rule
(`CausalSelector`, the alarm's own selector) replayed over the EVALUATION series (eval.jsonl:
the checkpoints' DSE components on the fixed val images) in step order, up to and including the
last checkpoint at or before the firing step; its `best_step` is the pick. When the alarm never
fires, nothing told the run to look back: the online pick is the last checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from ..selection.causal import CausalSelector
from ..selection.run_report import as_float
from ..utils.jsonl import read_jsonl


def first_alarm_step(run_dir) -> Optional[int]:
    """Step of the first metrics.jsonl row carrying an "alarm" field (None: it never fired)."""
    steps = [int(row["step"]) for row in read_jsonl(Path(run_dir) / "metrics.jsonl") if row.get("alarm")]
    return min(steps) if steps else None


def online_pick(rows: list, fire_step: Optional[int], warmup: int = 2, smoothing: int = 1) -> Optional[dict]:
    """The eval row the causal rule picks among the checkpoints up to `fire_step` (None: the
    alarm never fired, so the last row).

    Args:
        rows: eval.jsonl rows (step, inter, intra_image, intra_batch, dim), any order.
        fire_step: the alarm's first firing step, or None.
        warmup, smoothing: the CausalSelector's settings for the (short) evaluation series.

    Returns:
        the picked row, or None when no row up to `fire_step` has finite DSE components (or
        there are no rows).
    """
    ordered = sorted(rows, key=lambda r: r["step"])
    if fire_step is None:
        return ordered[-1] if ordered else None
    selector = CausalSelector(warmup=warmup, smoothing=smoothing)
    seen = {}
    for row in ordered:
        if row["step"] > fire_step:
            break
        selector.update(row)
        seen[int(row["step"])] = row
    step = selector.best_step
    return None if step is None else seen[step]


def peak_row(rows: list) -> Optional[dict]:
    """The eval row with the highest finite mIoU (ties: the earliest), or None."""
    finite = [r for r in sorted(rows, key=lambda r: r["step"]) if math.isfinite(as_float(r.get("miou")))]
    return max(finite, key=lambda r: as_float(r["miou"])) if finite else None


def alarm_result(run_dir, rows: list, offline: dict, warmup: int = 2, smoothing: int = 1) -> dict:
    """One run's alarm record: firing step, mIoU peak, and the online, offline, last and best picks.

    `offline` is the study's selection dict (selected_step / selected_miou, last_*, best_*).
    """
    fire = first_alarm_step(run_dir)
    pick = online_pick(rows, fire, warmup, smoothing)
    peak = peak_row(rows)
    return {
        "fire_step": fire, "fired": fire is not None,
        "peak_step": None if peak is None else peak["step"], "peak_miou": None if peak is None else peak["miou"],
        "online_step": None if pick is None else pick["step"], "online_miou": None if pick is None else pick["miou"],
        "offline_step": offline["selected_step"], "offline_miou": offline["selected_miou"],
        "last_step": offline["last_step"], "last_miou": offline["last_miou"],
        "best_step": offline["best_step"], "best_miou": offline["best_miou"],
    }
