"""iBOT (Zhou et al. 2022): DINO on the CLS token plus masked patch-token self-distillation."""

from __future__ import annotations

import torch
from torch import nn

from ..models import encode, grid_size, split_tokens
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
        self.patch_loss_fn = DINOLoss(out_dim)
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
        globals_ = torch.cat(views[:2])
        h, w = grid_size(self.student, globals_.shape[-2:])
        mask = self.random_masks(2 * B, h * w, self.step_generator(step, globals_.device), globals_.device)

        with torch.no_grad():
            t_cls, t_patches = split_tokens(self.teacher, encode(self.teacher, globals_))
            t_cls_logits = self.teacher_head(t_cls).reshape(2, B, -1)
            t_patch_logits = self.teacher_head(t_patches)  # [2B, N, K]

        s_cls, s_patches = split_tokens(self.student, encode(self.student, globals_, mask=mask,
                                                             mask_token=self.mask_token))
        s_cls_logits = [self.student_head(s_cls)]
        if len(views) > 2:
            local_cls, _ = split_tokens(self.student, encode(self.student, torch.cat(views[2:])))
            s_cls_logits.append(self.student_head(local_cls))
        s_cls_logits = torch.cat(s_cls_logits).reshape(len(views), B, -1)
        s_patch_logits = self.student_head(s_patches)

        t_cls_probs = self.loss_fn.teacher_probs(t_cls_logits)
        cls_terms = [self.loss_fn.cross_entropy(t_cls_probs[t], s_cls_logits[s]).mean()
                     for t in range(2) for s in range(len(views)) if s != t]
        t_patch_probs = self.patch_loss_fn.teacher_probs(t_patch_logits)  # [2B, N, K]
        maskf = mask.float()

        def masked_mean(values):  # [2B, N] -> mean over masked patches, then images
            return ((values * maskf).sum(1) / maskf.sum(1).clamp_min(1)).mean()

        patch_loss = masked_mean(self.patch_loss_fn.cross_entropy(t_patch_probs, s_patch_logits))
        self.loss_fn.update_center(t_cls_logits)
        self.patch_loss_fn.update_center(t_patch_logits)
        loss = torch.stack(cls_terms).mean() + patch_loss
        with torch.no_grad():
            patch_entropy = masked_mean(-(t_patch_probs * t_patch_probs.clamp_min(1e-12).log()).sum(-1))
        entropy = self.loss_fn.entropy(t_cls_probs) + patch_entropy
        # DSE regularises the student's patch tokens of view 0 (masked positions included).
        return StepOutput(loss, s_patches[:B], t_patches[:B],
                          {"teacher_entropy": entropy, "kl": loss.detach() - entropy})
