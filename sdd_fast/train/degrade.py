"""`sdd-fast train --on-degrade warn|stop|rollback`: what the training loop does when the
degradation alarm (integrations/alarm.py) fires.

- warn: the row that fired carries `"alarm": "warn"` in metrics.jsonl; a line on stderr;
  OUT/alarm.json lists every event.
- stop: the loop saves a checkpoint at the current step, writes OUT/alarm.json (why, and that
  checkpoint) and returns; `sdd-fast train` exits with STOP_EXIT_CODE (3). `--resume` goes on
  from there (with another --on-degrade if wanted: the alarm options are not run-defining).
- rollback: the loop reloads the best checkpoint's weights, teacher, optimiser and scaler (not
  the step, the data stream or the RNG: the run goes on with new batches), multiplies the
  learning rate by --rollback-lr-scale and sets the regulariser weight to --rollback-dse-beta,
  at most --max-rollbacks times (later alarms only warn).

The alarm's best is among checkpointed evaluations, so a rollback always has a file to reload.
Everything the alarm did (selector statistics, events, rollbacks, lr scale, beta) goes into
every checkpoint (`state_dict`), so --resume reproduces the uninterrupted run. Resuming a
checkpoint written without an alarm (--on-degrade none) with one starts the alarm's
statistics at the resume step.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

from ..integrations.alarm import DegradationAlarm
from ..utils.jsonl import write_json

STOP_EXIT_CODE = 3  # `sdd-fast train` stopped by --on-degrade stop


class DegradeControl:
    """The run's alarm (None with --on-degrade none) and what its rollbacks changed.

    Args:
        config (TrainConfig): the run's options.
        out (Path): the run directory (OUT/alarm.json).
        is_main (bool): whether this process writes (rank 0).
    """

    def __init__(self, config, out, is_main: bool):
        self.config, self.out, self.is_main = config, Path(out), is_main
        self.alarm = None
        if config.on_degrade != "none":
            every, last = max(1, config.save_every), config.steps

            def saved(step: int) -> bool:  # the loop checkpoints these steps (after flushing their row)
                return step % every == 0 or step == last

            self.alarm = DegradationAlarm(patience=config.alarm_patience, margin=config.alarm_margin,
                                          action=config.on_degrade, warmup=config.alarm_warmup,
                                          smoothing=config.alarm_smoothing, eligible=saved)
        self.lr_scale, self.dse_beta, self.rollbacks = 1.0, float(config.dse_beta), 0
        self.stopped: Optional[dict] = None  # the event that stopped the run

    def state_dict(self) -> dict:
        """What a checkpoint keeps: lr scale, beta, rollback count, the alarm's state (or None)."""
        return {"lr_scale": self.lr_scale, "dse_beta": self.dse_beta, "rollbacks": self.rollbacks,
                "alarm": None if self.alarm is None else self.alarm.state_dict()}

    def load_state_dict(self, state: Optional[dict], branch: bool = False) -> None:
        """Restores `state_dict()` from a checkpoint (None: a checkpoint without it, nothing to do).

        A branch (--branch-from) keeps the lr scale but takes its beta from --dse-beta and starts
        a fresh alarm: the branch point's history names checkpoints of another directory.
        """
        if not state:
            return
        self.lr_scale = float(state["lr_scale"])
        if branch:
            return
        self.dse_beta, self.rollbacks = float(state["dse_beta"]), int(state["rollbacks"])
        if self.alarm is not None and state.get("alarm") is not None:
            self.alarm.load_state_dict(state["alarm"])

    def act(self, step: int, monitor, reload: Callable[[int], Path]) -> bool:
        """Carries out the alarm's pending event at `step`, if any; True when the run must stop.

        `reload(best_step)` restores the weights of that checkpoint (rollback); `monitor` is
        flushed first, so the rows of the abandoned weights are judged before the reset.
        """
        event = None if self.alarm is None else self.alarm.take()
        if event is None:
            return False
        event["at_step"] = step
        taken = event["action"]
        if taken == "rollback" and self.rollbacks >= self.config.max_rollbacks:
            taken = "warn"
            event["note"] = f"--max-rollbacks {self.config.max_rollbacks} reached: warned only"
        if taken in ("stop", "rollback"):
            monitor.flush()
            extra = self.alarm.take()  # fired by the row just flushed: this action answers it too
            if extra is not None:
                extra["taken"] = f"none (answered by the {taken} of step {step})"
        if taken == "rollback":
            path = reload(event["best_step"])
            self.rollbacks += 1
            self.lr_scale *= self.config.rollback_lr_scale
            if self.config.rollback_dse_beta >= 0:
                self.dse_beta = float(self.config.rollback_dse_beta)
            event.update(rollback_to=str(path), lr_scale=self.lr_scale, dse_beta=self.dse_beta)
            self.alarm.after_rollback()
        event["taken"] = taken
        if self.is_main:
            print(f"sdd-fast train: degradation alarm at step {event['step']}: score {event['score']:.4g} < "
                  f"{event['threshold']:.4g} (best {event['best']:.4g} at step {event['best_step']}); {taken}"
                  + (f" to step {event['best_step']}" if taken == "rollback" else ""), file=sys.stderr)
        if taken == "stop":
            self.stopped = event
            return True
        self.write_report()
        return False

    def write_report(self, checkpoint: Optional[Path] = None) -> None:
        """OUT/alarm.json (atomic; rank 0): every event so far, the rollbacks and, after a stop,
        the checkpoint to --resume from."""
        if not self.is_main or self.alarm is None:
            return
        write_json(self.out / "alarm.json", {
            "on_degrade": self.config.on_degrade, "events": self.alarm.events, "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale, "dse_beta": self.dse_beta, "stopped": self.stopped is not None,
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "exit_code": STOP_EXIT_CODE if self.stopped is not None else None})
