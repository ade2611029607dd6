"""What every SSL method gives the shared loop.

A method is an nn.Module holding its student (and teacher) networks. The loop calls
`forward(views, step)` -> StepOutput, back-propagates `loss`, then `after_step(step)`
(the EMA teacher update). Only the method's own file knows its heads, views and loss.
"""

from __future__ import annotations

import copy
from typing import NamedTuple, Optional

import torch
from torch import nn

from ..models import build_backbone, patch_tokens
from .config import TrainConfig
from .schedule import cosine_schedule


class StepOutput(NamedTuple):
    """One training step's results.

    loss (Tensor[]): the method's loss (before any DSE regularisation).
    student_patches (Tensor[B, N, d]): the student's final-norm patch tokens of the first
        view, with gradient (what `--dse-beta` regularises).
    monitor_patches (Tensor[B, N, d] or None): the teacher's (or encoder's) patch tokens of
        the first view, no gradient (what `--dse-every` monitors); None: ask `monitor_tokens`.
    stats (dict of 0-d Tensors, optional): extra numbers for the log row.
    """

    loss: torch.Tensor
    student_patches: torch.Tensor
    monitor_patches: Optional[torch.Tensor]
    stats: Optional[dict] = None


class SSLMethod(nn.Module):
    """Base class: the student backbone, an optional EMA teacher, the views and the loss."""

    name = "base"

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config
        self.student = build_backbone(config.arch, config.img_size)
        self.embed_dim = self.student.embed_dim

    # ---- to be defined by each method ----------------------------------------------------------
    def make_transform(self):
        """uint8 image [3, H, W] -> list of float views."""
        raise NotImplementedError

    def forward(self, views: list, step: int) -> StepOutput:
        raise NotImplementedError

    # ---- shared behaviour ---------------------------------------------------------------------
    def eval_backbone(self) -> nn.Module:
        """The backbone checkpoints store for evaluation: the teacher's if there is one."""
        teacher = getattr(self, "teacher", None)
        return teacher if teacher is not None else self.student

    @torch.no_grad()
    def monitor_tokens(self, views: list) -> torch.Tensor:
        """[B, N, d] patch tokens DSE monitors when forward did not produce them."""
        return patch_tokens(self.eval_backbone(), views[0])

    def student_patch_count(self, patches: int) -> int:
        """How many of an image's `patches` patch tokens `StepOutput.student_patches` holds
        (what the DSE regulariser sees): all of them, unless the method hides some."""
        return patches

    def after_step(self, step: int) -> None:
        """Called after every optimizer step (EMA updates)."""

    def step_generator(self, step: int, device: torch.device) -> torch.Generator:
        """A generator for this step's random masks, seeded by (seed, step) only."""
        return torch.Generator(device=device).manual_seed(self.config.seed * 1_000_003 + step)


class EMATeacher:
    """Mixin helpers for methods with a momentum teacher: `self.teacher_modules` pairs."""

    @staticmethod
    def frozen_copy(module: nn.Module) -> nn.Module:
        """A copy of `module` without gradients (the teacher starts equal to the student)."""
        teacher = copy.deepcopy(module)
        for p in teacher.parameters():
            p.requires_grad_(False)
        return teacher

    @staticmethod
    def momentum_schedule(config: TrainConfig) -> list:
        """[steps] EMA momentum: cosine from momentum_teacher to 1 (DINO)."""
        return cosine_schedule(config.momentum_teacher, 1.0, config.steps)

    @staticmethod
    @torch.no_grad()
    def ema_update(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
        """teacher = momentum * teacher + (1 - momentum) * student, parameter by parameter."""
        s_params = [p.detach() for p in student.parameters()]
        t_params = list(teacher.parameters())
        torch._foreach_mul_(t_params, momentum)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)
