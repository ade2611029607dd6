"""The Lightning callback logs DSE components from a LightningModule's training_step."""

import pytest
import torch

L = pytest.importorskip("lightning")

from sdd_fast.integrations.lightning import DSECallback  # noqa: E402


class TinyModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 16)

    def training_step(self, batch, batch_idx):
        tokens = self.proj(batch[0])  # [B, N, 16]
        return {"loss": tokens.pow(2).mean(), "patch_tokens": tokens}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_callback_logs_every_component(tmp_path):
    data = torch.utils.data.TensorDataset(torch.randn(32, 24, 8))
    logged = {}

    class Capture(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            logged.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    trainer = L.Trainer(max_steps=2, callbacks=[DSECallback(every=1, global_k=4, group=4), Capture()],
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.fit(TinyModule(), torch.utils.data.DataLoader(data, batch_size=8))
    for name in ("dse", "inter", "intra_image", "intra_batch", "dim"):
        assert f"dse/{name}" in logged
    assert 0 < logged["dse/dim"] <= 1


def test_callback_rejects_bad_every():
    with pytest.raises(ValueError, match="every"):
        DSECallback(every=0)
