"""DSEMonitor: DSE of patch tokens every k steps, logged without stalling the training step.

    monitor = sdd_fast.DSEMonitor(every=10, loggers=[sdd_fast.loggers.JsonlLogger("dse.jsonl")])
    for step, images in enumerate(loader):
        tokens = model.forward_features(images)[:, 1:]        # [B, N, d] patch tokens
        loss = ...; loss.backward(); optimizer.step()
        monitor.log(step, tokens, loss=loss)                  # tensors are fine: no sync here
    monitor.close()

Rows are turned into Python numbers one call later (or at `flush`/`close`): by then the
device has finished the work, so reading them does not stall the step that produced them.
Under torchrun every rank calls `log`; values are averaged over ranks and only rank 0 writes.

`alarm=DegradationAlarm(...)` (integrations/alarm.py) reads every row as it is materialised and
adds `score` (smoothed recombined score) and, when it fires, `alarm` to it.
"""

from __future__ import annotations

import time
from typing import Optional

import torch

from ..core.estimator import check_shape, dse
from ..core.options import DSE_FIELDS
from ..utils.distributed import all_reduce_mean


class DSEMonitor:
    """Computes DSE every `every` steps and sends rows to loggers.

    Args:
        every (int): compute DSE when step % every == 0 (0 = never; other values still log).
        loggers (list): objects with log(row) / close(); rows are dicts with `step`.
        dse_options (dict): keyword options of `sdd_fast.dse` (local_k, global_k, ...).
        write (bool): False on ranks other than 0 under torchrun (they compute, do not write).
        alarm (DegradationAlarm): optional; consumes each row when it is materialised (`flush`).
    """

    def __init__(self, every: int = 1, loggers=(), dse_options: Optional[dict] = None, write: bool = True,
                 alarm=None):
        if every < 0:
            raise ValueError(f"every must be >= 0; got {every}")
        self.every, self.loggers, self.write = every, list(loggers), write
        self.dse_options = dict(dse_options or {})
        self.alarm = alarm
        self._pending = None  # (row with tensors, timing)
        self.last: dict = {}  # the latest row written, as Python numbers

    def due(self, step: int) -> bool:
        """Whether `log(step, feats)` computes DSE."""
        return self.every > 0 and step % self.every == 0

    def check_shape(self, shape: tuple) -> None:
        """ValueError (from `dse`'s checks) when patch tokens of `shape` [B, N, d] cannot be
        measured with these options; runs no kernel (meta tensors)."""
        check_shape(shape, **self.dse_options)

    @torch.no_grad()
    def measure(self, feats: torch.Tensor) -> tuple:
        """(Tensor[5] dse components averaged over ranks, timing handle) of patch tokens [B, N, d]."""
        feats = feats.detach()
        if feats.is_cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            values = torch.stack(tuple(dse(feats, **self.dse_options)))
            end.record()
            timing = (start, end)
        else:
            t0 = time.perf_counter()
            values = torch.stack(tuple(dse(feats, **self.dse_options)))
            timing = (time.perf_counter() - t0) * 1e3
        return all_reduce_mean(values.float()), timing

    def log(self, step: int, feats: Optional[torch.Tensor] = None, *, measured: Optional[tuple] = None,
            **scalars) -> None:
        """Queues a row for `step`: `scalars` (numbers or 0-d tensors, averaged over ranks)
        and, when due and `feats` [B, N, d] is given, the DSE components and `dse_ms`.
        `measured` passes the result of an earlier `measure(feats)` call instead of `feats`."""
        row = {"step": step}
        for key, value in scalars.items():
            row[key] = all_reduce_mean(value.detach().float()) if isinstance(value, torch.Tensor) else value
        if measured is None and feats is not None and self.due(step):
            measured = self.measure(feats)
        timing = None
        if measured is not None:
            values, timing = measured
            row.update(zip(DSE_FIELDS, values))
        self.flush()
        self._pending = (row, timing)

    def flush(self) -> None:
        """Writes the queued row (this is where tensors become numbers)."""
        if self._pending is None:
            return
        row, timing = self._pending
        self._pending = None
        out = {}
        for key, value in row.items():
            out[key] = value.item() if isinstance(value, torch.Tensor) else value
        if isinstance(timing, tuple):
            timing[1].synchronize()
            out["dse_ms"] = timing[0].elapsed_time(timing[1])
        elif timing is not None:
            out["dse_ms"] = timing
        if self.alarm is not None:
            # Every rank materialises the same all-reduced means, so every rank's alarm takes
            # the same decision (under torchrun all ranks stop / roll back together).
            out.update(self.alarm.observe(out))
        self.last = out
        if self.write:
            for logger in self.loggers:
                logger.log(out)

    def close(self) -> None:
        """Flushes and closes the loggers."""
        self.flush()
        for logger in self.loggers:
            logger.close()
