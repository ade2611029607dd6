"""DINO (Caron et al. 2021): self-distillation with multi-crop, a centred and sharpened EMA teacher."""

from __future__ import annotations

import torch

from ..models import encode, split_tokens
from .augment import MultiCrop
from .heads import DINOHead, DINOLoss
from .method import EMATeacher, SSLMethod, StepOutput


class DINO(SSLMethod, EMATeacher):
    """Student and EMA teacher ViTs with DINO heads; the loss pairs every teacher global view
    with every other student view (2 global + `local_crops` local).

    The teacher temperature is `config.teacher_temp` (default 0.02, half of DINO's 0.04): with
    1,024 prototypes and batches of 32, 0.04 leaves the teacher's distribution near uniform
    (entropy 6.6 of at most 6.93); 0.02 keeps it at 4-4.5. The probe gained more with 0.02 on
    one seed (+0.022 vs +0.009 mIoU in 400 steps) and the same on another (docs/STUDY.md).
    """

    name = "dino"

    def __init__(self, config, out_dim: int = 1024):
        super().__init__(config)
        self.student_head = DINOHead(self.embed_dim, out_dim, use_bn=True)
        self.teacher = self.frozen_copy(self.student)
        self.teacher_head = self.frozen_copy(self.student_head)
        self.loss_fn = DINOLoss(out_dim, teacher_temp=config.teacher_temp)
        self.momentum = self.momentum_schedule(config)

    def make_transform(self):
        return MultiCrop(self.config.img_size, self.config.local_crops)

    def student_views(self, views: list, mask=None, mask_token=None) -> tuple:
        """(CLS logits per view [V, B, K], patch tokens of both global views [2B, N, d]); globals
        (optionally masked, see `encode`) and locals run as one batch each."""
        B = views[0].shape[0]
        globals_ = encode(self.student, torch.cat(views[:2]), mask=mask, mask_token=mask_token)  # [2B, 1 + N, d]
        cls, patches = split_tokens(self.student, globals_)
        logits = [self.student_head(cls)]
        if len(views) > 2:
            local_cls, _ = split_tokens(self.student, encode(self.student, torch.cat(views[2:])))
            logits.append(self.student_head(local_cls))
        return torch.cat(logits).reshape(len(views), B, -1), patches

    @torch.no_grad()
    def teacher_views(self, views: list) -> tuple:
        """(teacher CLS logits of the 2 global views [2, B, K], their patch tokens [2B, N, d])."""
        B = views[0].shape[0]
        cls, patches = split_tokens(self.teacher, encode(self.teacher, torch.cat(views[:2])))
        return self.teacher_head(cls).reshape(2, B, -1), patches

    def cls_loss(self, teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> tuple:
        """(DINO loss, teacher entropy) of teacher [2, B, K] and student [V, B, K] CLS logits:
        every teacher global view against every other student view; updates the centre."""
        teacher_probs = self.loss_fn.teacher_probs(teacher_logits)
        terms = [self.loss_fn.cross_entropy(teacher_probs[t], student_logits[s]).mean()
                 for t in range(2) for s in range(len(student_logits)) if s != t]
        self.loss_fn.update_center(teacher_logits)
        return torch.stack(terms).mean(), self.loss_fn.entropy(teacher_probs)

    def forward(self, views: list, step: int) -> StepOutput:
        B = views[0].shape[0]
        teacher_logits, teacher_patches = self.teacher_views(views)
        student_logits, student_patches = self.student_views(views)
        loss, entropy = self.cls_loss(teacher_logits, student_logits)
        return StepOutput(loss, student_patches[:B], teacher_patches[:B],
                          {"teacher_entropy": entropy, "kl": loss.detach() - entropy})

    def after_step(self, step: int) -> None:
        m = self.momentum[min(step, len(self.momentum) - 1)]
        self.ema_update(self.student, self.teacher, m)
        self.ema_update(self.student_head, self.teacher_head, m)
