"""A convolutional patch embedding for timm ViTs ("Early convolutions help transformers see
better", Xiao et al. 2021): stride-2 3x3 convolutions instead of one patch-sized linear map.

With it the 64-wide ViT learns texture in a few hundred steps where the linear patch embedding
needs several times more (supervised on the embedded scenes, probe mIoU 0.30 vs 0.16 after
200 steps), which is what lets the bundled trainers improve on a random network on a CPU.
"""

from __future__ import annotations

import math

from timm.layers import PatchEmbed
from torch import nn


class ConvStemPatchEmbed(PatchEmbed):
    """timm's PatchEmbed with `proj` replaced by log2(patch) blocks of stride-2 conv 3x3 ->
    GroupNorm(1) -> GELU (widths embed_dim / 2^k), then a 1x1 conv to embed_dim.

    Takes PatchEmbed's arguments (so it plugs into `VisionTransformer(embed_layer=...)`, with
    dynamic image sizes); the patch size must be a power of two. Images [B, 3, H, W] -> tokens
    as PatchEmbed ([B, H/p, W/p, d] or [B, N, d]).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        embed_dim, patch, in_chans = self.proj.out_channels, self.patch_size[0], self.proj.in_channels
        blocks = int(round(math.log2(patch)))
        if 2**blocks != patch or self.patch_size[0] != self.patch_size[1] or blocks < 1:
            raise ValueError(f"ConvStemPatchEmbed needs a square power-of-two patch size; got {self.patch_size}")
        layers, width_in = [], in_chans
        for k in range(blocks):
            width = max(16, embed_dim >> (blocks - k))  # e.g. 64 -> 16, 16, 32 for 8 px patches
            layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1), nn.GroupNorm(1, width), nn.GELU()]
            width_in = width
        layers.append(nn.Conv2d(width_in, embed_dim, 1))
        self.proj = nn.Sequential(*layers)
