"""Lightning callback: DSE of the patch tokens a `training_step` returns, logged every k steps.

    class MyModule(lightning.LightningModule):
        def training_step(self, batch, batch_idx):
            tokens = self.backbone.forward_features(batch)[:, 1:]      # [B, N, d] patch tokens
            return {"loss": self.ssl_loss(...), "patch_tokens": tokens}

    trainer = lightning.Trainer(callbacks=[sdd_fast.lightning.DSECallback(every=10)])

Values go through `LightningModule.log` (so every Lightning logger receives them as
`dse/dse`, `dse/inter`, ...), averaged over processes under DDP.

`DSECallback(alarm=DegradationAlarm(action="warn" | "stop"))` also watches the smoothed
recombined score (integrations/alarm.py): it logs `dse/score` and, when the alarm fires,
`dse/alarm` = 1 and a warning; "stop" sets `trainer.should_stop`. The components are read
one due call late (no host sync in the step that produced them), so the alarm acts one
evaluation late. "rollback" is not supported here (reloading a Lightning checkpoint mid-fit is
the trainer's business): use `sdd-fast train --on-degrade rollback`, or `take()` the event.
"""

from __future__ import annotations

try:
    import lightning as L
except ImportError as error:  # pragma: no cover - exercised only without lightning
    raise ImportError("sdd_fast.integrations.lightning needs `lightning` (pip install lightning)") from error

import warnings

import torch

from ..core.estimator import DSEResult, dse
from ..utils.distributed import all_reduce_mean


class DSECallback(L.Callback):
    """Computes `sdd_fast.dse` on `outputs[tokens_key]` after every `every`-th training batch.

    Args:
        every (int): compute when trainer.global_step % every == 0 (>= 1).
        tokens_key (str): key of the [B, N, d] patch tokens in training_step's returned dict.
        prefix (str): logged names are prefix + component.
        alarm (DegradationAlarm): optional, action "warn" or "stop" (see the module docstring).
        **dse_options: keyword options of `sdd_fast.dse`.
    """

    def __init__(self, every: int = 1, tokens_key: str = "patch_tokens", prefix: str = "dse/", alarm=None,
                 **dse_options):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1; got {every}")
        if alarm is not None and alarm.action == "rollback":
            raise ValueError("DSECallback: the alarm's rollback action is not supported in Lightning; use "
                             "action 'warn' or 'stop' (or `sdd-fast train --on-degrade rollback`)")
        self.every, self.tokens_key, self.prefix, self.dse_options = every, tokens_key, prefix, dse_options
        self.alarm = alarm
        self._pending = None  # (step, Tensor[5] components averaged over ranks) not yet read

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every:
            return
        tokens = outputs.get(self.tokens_key) if isinstance(outputs, dict) else None
        if tokens is None:
            raise KeyError(f"DSECallback: training_step must return a dict with {self.tokens_key!r} "
                           f"(patch tokens [B, N, d])")
        with torch.no_grad():
            result = dse(tokens.detach(), **self.dse_options)
        pl_module.log_dict({self.prefix + name: value for name, value in zip(DSEResult._fields, result)},
                           on_step=True, on_epoch=False, sync_dist=trainer.world_size > 1)
        if self.alarm is not None:
            self._observe(trainer, pl_module)
            # Averaged over ranks (as sync_dist does): every rank's alarm decides alike.
            self._pending = (trainer.global_step, all_reduce_mean(torch.stack(tuple(result)).detach().float()))

    def on_train_end(self, trainer, pl_module) -> None:
        """The last evaluation reaches the alarm (nothing is logged any more: fit is over)."""
        if self.alarm is not None:
            self._observe(trainer, None)

    def _observe(self, trainer, pl_module) -> None:
        """Feeds the pending evaluation to the alarm; logs its score, warns or stops on firing."""
        if self._pending is None:
            return
        step, values = self._pending
        self._pending = None
        row = {"step": step, **dict(zip(DSEResult._fields, values.tolist()))}
        fields = self.alarm.observe(row)
        if pl_module is not None and "score" in fields:
            logged = {self.prefix + "score": fields["score"], self.prefix + "alarm": float("alarm" in fields)}
            pl_module.log_dict(logged, on_step=True, on_epoch=False)
        if "alarm" in fields:
            event = self.alarm.take()
            warnings.warn(f"DSECallback: degradation alarm at step {step}: score {event['score']:.4g} < "
                          f"{event['threshold']:.4g} (best {event['best']:.4g} at step {event['best_step']}); "
                          f"{event['action']}", stacklevel=2)
            if event["action"] == "stop":
                trainer.should_stop = True
