"""Lightning callback: DSE of the patch tokens a `training_step` returns, logged every k steps.

    class MyModule(lightning.LightningModule):
        def training_step(self, batch, batch_idx):
            tokens = self.backbone.forward_features(batch)[:, 1:]      # [B, N, d] patch tokens
            return {"loss": self.ssl_loss(...), "patch_tokens": tokens}

    trainer = lightning.Trainer(callbacks=[sdd_fast.lightning.DSECallback(every=10)])

Values go through `LightningModule.log` (so every Lightning logger receives them as
`dse/dse`, `dse/inter`, ...), averaged over processes under DDP.
"""

from __future__ import annotations

try:
    import lightning as L
except ImportError as error:  # pragma: no cover - exercised only without lightning
    raise ImportError("sdd_fast.integrations.lightning needs `lightning` (pip install lightning)") from error

import torch

from ..core.estimator import DSEResult, dse


class DSECallback(L.Callback):
    """Computes `sdd_fast.dse` on `outputs[tokens_key]` after every `every`-th training batch.

    Args:
        every (int): compute when trainer.global_step % every == 0 (>= 1).
        tokens_key (str): key of the [B, N, d] patch tokens in training_step's returned dict.
        prefix (str): logged names are prefix + component.
        **dse_options: keyword options of `sdd_fast.dse`.
    """

    def __init__(self, every: int = 1, tokens_key: str = "patch_tokens", prefix: str = "dse/", **dse_options):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1; got {every}")
        self.every, self.tokens_key, self.prefix, self.dse_options = every, tokens_key, prefix, dse_options

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
