"""MAE (He et al. 2022): reconstruct the pixels of masked patches from the visible ones."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ..models import encode, grid_size, split_tokens
from .augment import OneView
from .method import SSLMethod, StepOutput


class MAE(SSLMethod):
    """The encoder sees only the visible patches (default 75 % masked); a light transformer
    decoder with mask tokens predicts every masked patch's per-patch-normalised pixels."""

    name = "mae"

    def __init__(self, config, decoder_dim: int = 96, decoder_depth: int = 2, decoder_heads: int = 4):
        super().__init__(config)
        self.mask_ratio = config.mask_ratio or 0.75
        patch = self.student.patch_embed.patch_size
        h, w = grid_size(self.student, (config.img_size, config.img_size))
        self.decoder_embed = nn.Linear(self.embed_dim, decoder_dim)
        self.decoder_mask_token = nn.Parameter(torch.zeros(decoder_dim))
        self.decoder_pos = nn.Parameter(torch.zeros(1, h * w, decoder_dim))
        nn.init.trunc_normal_(self.decoder_pos, std=0.02)
        nn.init.trunc_normal_(self.decoder_mask_token, std=0.02)
        self.decoder = nn.Sequential(*[Block(decoder_dim, decoder_heads) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch[0] * patch[1] * 3)

    def make_transform(self):
        return OneView(self.config.img_size)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, N, p*p*3] pixel patches (row-major grid)."""
        p, q = self.student.patch_embed.patch_size
        B, C, H, W = images.shape
        x = images.reshape(B, C, H // p, p, W // q, q)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(B, (H // p) * (W // q), p * q * C)

    def student_patch_count(self, patches: int) -> int:
        """The encoder sees only the visible patches: round(N * (1 - mask_ratio)), at least 1."""
        return max(1, int(round(patches * (1 - self.mask_ratio))))

    def forward(self, views: list, step: int) -> StepOutput:
        images = views[0]
        B = images.shape[0]
        N = self.decoder_pos.shape[1]
        keep_count = self.student_patch_count(N)
        noise = torch.rand(B, N, generator=self.step_generator(step, images.device), device=images.device)
        order = noise.argsort(dim=1)  # [B, N]: visible patches first
        keep = order[:, :keep_count]

        _, visible = split_tokens(self.student, encode(self.student, images, keep=keep))  # [B, K, d]
        x = self.decoder_embed(visible)
        full = self.decoder_mask_token.to(x.dtype).expand(B, N, -1).clone()
        full.scatter_(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]), x)
        pred = self.decoder_pred(self.decoder_norm(self.decoder(full + self.decoder_pos)))  # [B, N, p*p*3]

        target = self.patchify(images)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        masked = torch.ones(B, N, device=images.device)
        masked.scatter_(1, keep, 0.0)
        loss = (((pred.float() - target) ** 2).mean(-1) * masked).sum() / masked.sum()
        # The encoder only saw visible patches; the monitor runs it on the whole image instead.
        return StepOutput(loss, visible, None)
