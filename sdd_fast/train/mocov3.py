"""MoCo v3 (Chen, Xie & He 2021): contrastive learning with a predictor and a momentum encoder."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn import functional as F

from ..models import encode, split_tokens
from ..utils.distributed import all_gather_no_grad
from .augment import TwoViews
from .heads import mlp
from .method import EMATeacher, SSLMethod, StepOutput


class MoCoV3(SSLMethod, EMATeacher):
    """Query = predictor(projector(CLS)) of the student, key = projector(CLS) of the momentum
    encoder on the other view; InfoNCE over the (global) batch, symmetrised, scaled by 2T."""

    name = "mocov3"

    def __init__(self, config, dim: int = 128, hidden: int = 512, temperature: float = 0.2):
        super().__init__(config)
        self.projector = mlp(self.embed_dim, hidden, dim, layers=3, norm="bn", last_norm=True)
        self.predictor = mlp(dim, hidden, dim, layers=2, norm="bn", last_norm=True)
        self.teacher = self.frozen_copy(self.student)
        self.teacher_projector = self.frozen_copy(self.projector)
        self.temperature = temperature
        self.momentum = self.momentum_schedule(config)

    def make_transform(self):
        return TwoViews(self.config.img_size)

    def contrastive(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """InfoNCE of queries [B, D] against all keys [world * B, D]; positives on the diagonal."""
        q, k = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)
        k_all = all_gather_no_grad(k)
        offset = dist.get_rank() * q.shape[0] if dist.is_available() and dist.is_initialized() else 0
        labels = torch.arange(q.shape[0], device=q.device) + offset
        return F.cross_entropy(q @ k_all.T / self.temperature, labels) * 2 * self.temperature

    def forward(self, views: list, step: int) -> StepOutput:
        B = views[0].shape[0]
        both = torch.cat(views[:2])
        cls, patches = split_tokens(self.student, encode(self.student, both))
        q = self.predictor(self.projector(cls))  # [2B, D]
        with torch.no_grad():
            t_cls, t_patches = split_tokens(self.teacher, encode(self.teacher, both))
            k = self.teacher_projector(t_cls)
        loss = self.contrastive(q[:B], k[B:]) + self.contrastive(q[B:], k[:B])
        return StepOutput(loss, patches[:B], t_patches[:B])

    def after_step(self, step: int) -> None:
        m = self.momentum[min(step, len(self.momentum) - 1)]
        self.ema_update(self.student, self.teacher, m)
        self.ema_update(self.projector, self.teacher_projector, m)
