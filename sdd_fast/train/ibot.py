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
    CLS tokens are distilled as in DINO. One head serves CLS and patch tokens.

    The patch heads run only where the loss looks: at a fixed number R of positions per
    image (the most any image can have masked), masked ones first, so shapes do not depend
    on the draw (no host sync on a GPU). With the tiny default, the heads on every patch
    cost twice the backbone; on R = half the patches the step is ~1.4x faster. The patch
    centre is the mean over these positions: teacher patch tokens at random positions, an
    unbiased sample of all of them.
    """

    name = "ibot"

    def __init__(self, config, out_dim: int = 1024):
        super().__init__(config, out_dim)
        self.mask_token = nn.Parameter(torch.zeros(self.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.patch_loss_fn = DINOLoss(out_dim, teacher_temp=config.teacher_temp)
        self.mask_ratio = config.mask_ratio or 0.3

    def ratio_range(self) -> tuple:
        """(lowest, highest) fraction of an image's patches that is masked."""
        return 0.1, max(0.1, 2 * self.mask_ratio - 0.1)

    def random_masks(self, batch: int, patches: int, generator: torch.Generator, device) -> torch.Tensor:
        """[batch, patches] bool: per image a ratio drawn in `ratio_range()` of patches."""
        low, high = self.ratio_range()
        ratios = low + (high - low) * torch.rand(batch, 1, generator=generator, device=device)
        scores = torch.rand(batch, patches, generator=generator, device=device)
        ranks = scores.argsort(dim=1).argsort(dim=1)
        return ranks < (ratios * patches).round()

    def loss_positions(self, mask: torch.Tensor) -> tuple:
        """(index [batch, R] long, valid [batch, R] float) for mask [batch, N]: R = the most
        patches any image can have masked; each row lists its masked positions first, then
        unmasked ones (valid 0) to fill R."""
        R = max(1, int(round(self.ratio_range()[1] * mask.shape[1])))
        index = (~mask).to(torch.uint8).argsort(dim=1, stable=True)[:, :R]
        return index, mask.gather(1, index).float()

    @staticmethod
    def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """tokens [batch, N, d] at index [batch, R] -> [batch, R, d]."""
        return tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))

    def forward(self, views: list, step: int) -> StepOutput:
        B = views[0].shape[0]
        h, w = grid_size(self.student, views[0].shape[-2:])
        device = views[0].device
        mask = self.random_masks(2 * B, h * w, self.step_generator(step, device), device)  # [2B, N]

        index, valid = self.loss_positions(mask)  # [2B, R]

        t_cls_logits, t_patches = self.teacher_views(views)  # [2, B, K], [2B, N, d]
        with torch.no_grad():
            t_patch_logits = self.teacher_head(self.gather_tokens(t_patches, index))  # [2B, R, K]
        s_cls_logits, s_patches = self.student_views(views, mask=mask, mask_token=self.mask_token)
        s_patch_logits = self.student_head(self.gather_tokens(s_patches, index))  # [2B, R, K]

        cls_loss, cls_entropy = self.cls_loss(t_cls_logits, s_cls_logits)
        t_patch_probs = self.patch_loss_fn.teacher_probs(t_patch_logits)  # [2B, R, K]

        def masked_mean(values):  # [2B, R] -> mean over masked patches, then images
            return ((values * valid).sum(1) / valid.sum(1).clamp_min(1)).mean()

        patch_loss = masked_mean(self.patch_loss_fn.cross_entropy(t_patch_probs, s_patch_logits))
        self.patch_loss_fn.update_center(t_patch_logits)
        loss = cls_loss + patch_loss
        entropy = cls_entropy + masked_mean(self.patch_loss_fn.entropies(t_patch_probs))
        # DSE regularises the student's patch tokens of view 0 (masked positions included).
        return StepOutput(loss, s_patches[:B], t_patches[:B],
                          {"teacher_entropy": entropy, "kl": loss.detach() - entropy})
