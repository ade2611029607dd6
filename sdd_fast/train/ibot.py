"""iBOT (Zhou et al. 2022): DINO on the CLS token plus masked patch-token self-distillation."""

from __future__ import annotations

import torch
from torch import nn

from ..models import grid_size
from .dino import DINO
from .heads import DINOLoss
from .method import StepOutput


class IBOT(DINO):
    """The student sees its global views with a random fraction of patches replaced by a
    learned mask token and predicts the teacher's (unmasked) patch distributions there;
    CLS tokens are distilled as in DINO. One head serves CLS and patch tokens."""

    name = "ibot"

    def __init__(self, config, out_dim: int = 1024):
        super().__init__(config, out_dim)
        self.mask_token = nn.Parameter(torch.zeros(self.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.patch_loss_fn = DINOLoss(out_dim, teacher_temp=config.teacher_temp)
        self.mask_ratio = config.mask_ratio or 0.3

    def random_masks(self, batch: int, patches: int, generator: torch.Generator, device) -> torch.Tensor:
        """[batch, patches] bool: per image a ratio drawn in [0.1, 2 * mask_ratio - 0.1] of patches."""
        low, high = 0.1, max(0.1, 2 * self.mask_ratio - 0.1)
        ratios = low + (high - low) * torch.rand(batch, 1, generator=generator, device=device)
        scores = torch.rand(batch, patches, generator=generator, device=device)
        ranks = scores.argsort(dim=1).argsort(dim=1)
        return ranks < (ratios * patches).round()

    def forward(self, views: list, step: int) -> StepOutput:
        B = views[0].shape[0]
        h, w = grid_size(self.student, views[0].shape[-2:])
        device = views[0].device
        mask = self.random_masks(2 * B, h * w, self.step_generator(step, device), device)  # [2B, N]

        t_cls_logits, t_patches = self.teacher_views(views)  # [2, B, K], [2B, N, d]
        with torch.no_grad():
            t_patch_logits = self.teacher_head(t_patches)  # [2B, N, K]
        s_cls_logits, s_patches = self.student_views(views, mask=mask, mask_token=self.mask_token)
        s_patch_logits = self.student_head(s_patches)

        cls_loss, cls_entropy = self.cls_loss(t_cls_logits, s_cls_logits)
        t_patch_probs = self.patch_loss_fn.teacher_probs(t_patch_logits)  # [2B, N, K]
        maskf = mask.float()

        def masked_mean(values):  # [2B, N] -> mean over masked patches, then images
            return ((values * maskf).sum(1) / maskf.sum(1).clamp_min(1)).mean()

        patch_loss = masked_mean(self.patch_loss_fn.cross_entropy(t_patch_probs, s_patch_logits))
        self.patch_loss_fn.update_center(t_patch_logits)
        loss = cls_loss + patch_loss
        entropy = cls_entropy + masked_mean(self.patch_loss_fn.entropies(t_patch_probs))
        # DSE regularises the student's patch tokens of view 0 (masked positions included).
        return StepOutput(loss, s_patches[:B], t_patches[:B],
                          {"teacher_entropy": entropy, "kl": loss.detach() - entropy})
