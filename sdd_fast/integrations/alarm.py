"""DegradationAlarm: fires when the run's recombined DSE score stays below its best.

    alarm = DegradationAlarm(patience=5, margin=0.5, action="warn")
    monitor = sdd_fast.DSEMonitor(every=10, loggers=[...], alarm=alarm)
    ...                                             # monitor.log(step, tokens, ...) as usual
    if alarm.fired: print(alarm.events[-1])         # warn: rows also carry "alarm": "warn"
    event = alarm.take()                            # stop / rollback: the action your loop owes

The alarm reads the rows the monitor materialises (one call late: no host sync is added).
Each evaluation updates a `CausalSelector` (the recombined score of SPEC "Model selection",
causally: plain DSE during `warmup`, then relevance + lambda * dim, smoothed by the median of
the last `smoothing` evaluations). An evaluation is LOW when

    smoothed < best - margin * spread

(best: the highest smoothed score of an eligible evaluation so far; spread: the std of the
scores so far, so `margin` is in the run's own units and invariant to rescaling the
components). After `patience` consecutive low evaluations the alarm fires: it records an
event, adds `alarm` (the action) to that row, and counts again from zero. Never during the
warm-up; a non-finite evaluation is skipped and neither breaks nor extends a low streak.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

from ..core.options import COMPONENTS
from ..selection.causal import CausalSelector

ACTIONS = ("warn", "stop", "rollback")


class DegradationAlarm:
    """Watches the smoothed recombined score for a lasting fall below its best.

    Args:
        patience (int): consecutive low evaluations that fire the alarm (>= 1).
        margin (float): how far below the best counts as low, in stds of the scores so far (>= 0).
        action (str): "warn" (record only), "stop" or "rollback" (recorded, and handed to the
            training loop through `take()`; the bundled trainer acts on them).
        warmup (int): evaluations scored by the plain DSE, during which it never fires (>= 0).
        smoothing (int): median window of the smoothed score (>= 1).
        eligible (callable step -> bool): which evaluations may be the best (default: all; the
            trainer passes its checkpoint steps, so a rollback has a checkpoint to reload).
    """

    def __init__(self, patience: int = 5, margin: float = 0.5, action: str = "warn", warmup: int = 10,
                 smoothing: int = 3, eligible: Optional[Callable[[int], bool]] = None):
        if patience < 1:
            raise ValueError(f"patience must be >= 1; got {patience}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number >= 0; got {margin}")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}; got {action!r}")
        self.patience, self.margin, self.action, self.eligible = int(patience), float(margin), action, eligible
        self.selector = CausalSelector(warmup=warmup, smoothing=smoothing)
        self.low = 0  # consecutive low evaluations
        self.events: list = []  # one dict per firing (see `observe`)
        self.pending: Optional[dict] = None  # the latest event not yet `take`n

    @property
    def fired(self) -> bool:
        """Whether the alarm has fired at least once."""
        return bool(self.events)

    def observe(self, row: dict) -> dict:
        """Consumes one materialised row (Python numbers); returns the fields to add to it:
        {} without DSE components, else "score" (the smoothed score) and, when it fires,
        "alarm" (the action). Rows with DSE must come in step order."""
        if any(row.get(key) is None for key in COMPONENTS):
            return {}
        step = int(row["step"])
        selector = self.selector
        if not selector.update(row, eligible=self.eligible(step) if self.eligible else True):
            return {}  # non-finite: skipped
        smoothed, best = selector.smoothed, selector.best
        fields = {"score": smoothed}
        if selector.in_warmup or not math.isfinite(best):
            self.low = 0
            return fields
        threshold = best - self.margin * selector.spread
        self.low = self.low + 1 if smoothed < threshold else 0
        if self.low >= self.patience:
            self.low = 0
            event = {"step": step, "action": self.action, "score": smoothed, "best": best,
                     "best_step": selector.best_step, "threshold": threshold, "spread": selector.spread,
                     "lambda": selector.weight, "evaluations": selector.n}
            self.events.append(event)
            self.pending = event
            fields["alarm"] = self.action
        return fields

    def take(self) -> Optional[dict]:
        """The latest event not yet taken (the action the loop owes), or None; clears it."""
        event, self.pending = self.pending, None
        return event

    def after_rollback(self) -> None:
        """Call after reloading the best checkpoint: the low streak, a pending event and the
        smoothing window start afresh (the moments and the best are kept)."""
        self.low, self.pending = 0, None
        self.selector.restart_window()

    def state_dict(self) -> dict:
        """Plain-Python state for checkpoints: selector, low streak, events, pending event."""
        return {"selector": self.selector.state_dict(), "low": self.low, "events": [dict(e) for e in self.events],
                "pending": None if self.pending is None else dict(self.pending)}

    def load_state_dict(self, state: dict) -> None:
        """Restores `state_dict()`; patience, margin, action and windows stay this alarm's own."""
        self.selector.load_state_dict(state["selector"])
        self.low, self.events = int(state["low"]), [dict(e) for e in state["events"]]
        self.pending = None if state.get("pending") is None else dict(state["pending"])
