"""Projection heads shared by the methods."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int, norm: str = "none",
        last_norm: bool = False) -> nn.Sequential:
    """Linear (+ BatchNorm) + GELU blocks; `layers` linear layers in all."""
    mods = []
    dim = in_dim
    for i in range(layers):
        last = i == layers - 1
        width = out_dim if last else hidden
        mods.append(nn.Linear(dim, width, bias=not (norm == "bn" and (not last or last_norm))))
        if norm == "bn" and (not last or last_norm):
            mods.append(nn.BatchNorm1d(width, affine=not last))
        if not last:
            mods.append(nn.GELU())
        dim = width
    return nn.Sequential(*mods)


class DINOHead(nn.Module):
    """DINO's head: 3-layer MLP -> L2-normalised bottleneck -> weight-normalised prototypes.

    Input [..., in_dim] -> logits [..., out_dim]. `use_bn` puts BatchNorm after the hidden
    layers (DINO's `use_bn_in_head`): over a batch, it spreads the nearly identical outputs of a
    young network apart, so that centring does not flatten the teacher to uniform (the collapse
    the micro ViTs fall into without it: loss at log K after 200 steps).
    """

    def __init__(self, in_dim: int, out_dim: int = 1024, hidden: int = 512, bottleneck: int = 128,
                 use_bn: bool = False):
        super().__init__()
        self.mlp = mlp(in_dim, hidden, bottleneck, layers=3, norm="bn" if use_bn else "none")
        self.last = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck, out_dim, bias=False))
        self.last.parametrizations.weight.original0.data.fill_(1.0)
        self.last.parametrizations.weight.original0.requires_grad_(False)  # fixed norm, as DINO's norm_last_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])  # [M, in_dim]: BatchNorm1d normalises over all leading dims
        return self.last(F.normalize(self.mlp(flat), dim=-1)).reshape(*x.shape[:-1], -1)


class DINOLoss(nn.Module):
    """Cross-entropy between centred, sharpened teacher and student distributions.

    Holds the running centre [out_dim] (EMA of teacher outputs, all-reduced when distributed).
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9):
        super().__init__()
        self.student_temp, self.teacher_temp, self.center_momentum = student_temp, teacher_temp, center_momentum
        self.register_buffer("center", torch.zeros(out_dim))

    def teacher_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """softmax((logits - center) / teacher_temp) over the last dim."""
        return F.softmax((logits.float() - self.center) / self.teacher_temp, dim=-1)

    def cross_entropy(self, teacher_probs: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        """[...]: -sum p_t log p_s over the last dim."""
        return -(teacher_probs * F.log_softmax(student_logits.float() / self.student_temp, dim=-1)).sum(-1)

    @staticmethod
    @torch.no_grad()
    def entropies(probs: torch.Tensor) -> torch.Tensor:
        """[...]: entropy of each distribution [..., K]: the part of the cross-entropy the student
        cannot lower (it rises towards log K while centring flattens the teacher early on)."""
        return -(probs * probs.clamp_min(1e-12).log()).sum(-1)

    @classmethod
    def entropy(cls, probs: torch.Tensor) -> torch.Tensor:
        """Mean of `entropies` over all distributions."""
        return cls.entropies(probs).mean()

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """center = m * center + (1 - m) * mean(teacher logits) over the (global) batch."""
        from ..utils.distributed import all_reduce_mean

        batch_center = all_reduce_mean(teacher_logits.float().reshape(-1, teacher_logits.shape[-1]).mean(0))
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
