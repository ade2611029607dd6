"""Vision Transformer backbones from timm, and their patch tokens (what DSE measures).

Any timm ViT name works (`vit_small_patch16_224`, `vit_base_patch14_reg4_dinov2`, ...). Two
small ones for 64 x 64 images are registered here: the default `sdd_vit_nano_conv_patch8`
(4 blocks, 64 wide, convolutional stem), which trains on 2 CPU cores and learns texture within
a few hundred steps, and `sdd_vit_micro_patch8` (4 blocks, 128 wide, linear patch embedding).
Nothing is downloaded: every backbone starts from random weights.
"""

from __future__ import annotations

from typing import Optional

import timm
import torch
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .conv_stem import ConvStemPatchEmbed

DEFAULT_ARCH = "sdd_vit_nano_conv_patch8"


def _timm_kwargs(kwargs: dict) -> dict:
    """kwargs without timm's factory bookkeeping (which VisionTransformer does not take)."""
    return {k: v for k, v in kwargs.items() if k not in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")}


@register_model
def sdd_vit_micro_patch8(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViT-Micro/8 for 64 x 64 images: embed 128, depth 4, 4 heads (about 0.8 M parameters)."""
    if pretrained:
        raise ValueError("sdd_vit_micro_patch8 has no pretrained weights")
    config = dict(img_size=64, patch_size=8, embed_dim=128, depth=4, num_heads=4, mlp_ratio=4.0)
    config.update(_timm_kwargs(kwargs))
    return VisionTransformer(**config)


@register_model
def sdd_vit_nano_conv_patch8(pretrained: bool = False, **kwargs) -> VisionTransformer:
    """ViT-Nano/8 with a convolutional stem (`ConvStemPatchEmbed`) for 64 x 64 images: embed 64,
    depth 4, 2 heads (about 0.22 M parameters)."""
    if pretrained:
        raise ValueError("sdd_vit_nano_conv_patch8 has no pretrained weights")
    config = dict(img_size=64, patch_size=8, embed_dim=64, depth=4, num_heads=2, mlp_ratio=4.0,
                  embed_layer=ConvStemPatchEmbed)
    config.update(_timm_kwargs(kwargs))
    return VisionTransformer(**config)


def build_backbone(arch: str = DEFAULT_ARCH, img_size: int = 64, drop_path_rate: float = 0.0) -> VisionTransformer:
    """A randomly initialised timm ViT without classifier head.

    Args:
        arch (str): any timm Vision Transformer name (see `timm.list_models("vit_*")`).
        img_size (int): the global-view resolution; smaller views (local crops) also work
            because the position embedding is resampled on the fly (`dynamic_img_size`).
        drop_path_rate (float): stochastic depth of the blocks.

    Returns:
        VisionTransformer with `embed_dim` channels and `num_prefix_tokens` CLS/register tokens.
    """
    if arch not in timm.list_models() and arch not in timm.list_models(pretrained=True):
        raise ValueError(f"arch {arch!r} is not a timm model name (try `timm.list_models('vit_*')`)")
    model = timm.create_model(arch, pretrained=False, num_classes=0, img_size=img_size,
                              dynamic_img_size=True, drop_path_rate=drop_path_rate)
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"arch {arch!r} is a {type(model).__name__}, not a timm VisionTransformer")
    return model


def grid_size(backbone: VisionTransformer, image_hw: tuple) -> tuple:
    """(rows, cols) of the patch grid for images of height/width `image_hw`."""
    ph, pw = backbone.patch_embed.patch_size
    return image_hw[0] // ph, image_hw[1] // pw


def encode(backbone: VisionTransformer, images: torch.Tensor, mask: Optional[torch.Tensor] = None,
           mask_token: Optional[torch.Tensor] = None, keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """All final-norm tokens of `images`, optionally with masked or dropped patches.

    Args:
        images (Tensor[B, 3, H, W]): normalised images.
        mask (Tensor[B, N] bool, optional): patches replaced by `mask_token` before the
            position embedding (iBOT's masked image modelling).
        mask_token (Tensor[d], optional): the learned token for `mask`.
        keep (Tensor[B, K] int64, optional): indices of the only patches the encoder sees
            (MAE); the others are dropped after the position embedding.

    Returns:
        Tensor[B, P + N (or P + K), d]: P prefix tokens (CLS, registers) then patch tokens.
    """
    x = backbone.patch_embed(images)  # [B, h, w, d] (dynamic size) or [B, N, d]
    if mask is not None:
        if mask_token is None:
            raise ValueError("mask needs mask_token")
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # [B, N, d]
        flat = torch.where(mask.unsqueeze(-1), mask_token.to(flat.dtype), flat)
        x = flat.reshape(x.shape)
    x = backbone._pos_embed(x)  # [B, P + N, d]
    if keep is not None:
        prefix = backbone.num_prefix_tokens
        patches = torch.gather(x[:, prefix:], 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :prefix], patches], dim=1)
    x = backbone.norm_pre(backbone.patch_drop(x))
    x = backbone.blocks(x)
    x = backbone.norm(x)
    if isinstance(getattr(backbone, "fc_norm", None), nn.LayerNorm):
        x = backbone.fc_norm(x)  # models that pool with a final norm after pooling normalise here
    return x


def split_tokens(backbone: VisionTransformer, tokens: torch.Tensor) -> tuple:
    """(cls [B, d] or None, patches [B, N, d]) from `encode`'s output."""
    prefix = backbone.num_prefix_tokens
    cls = tokens[:, 0] if backbone.cls_token is not None else None
    return cls, tokens[:, prefix:]


def patch_tokens(backbone: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """Final-norm patch tokens [B, N, d] of `images` [B, 3, H, W] (no CLS / register tokens)."""
    return split_tokens(backbone, encode(backbone, images))[1]


@torch.no_grad()
def encode_with_cls_attention(backbone: VisionTransformer, images: torch.Tensor) -> tuple:
    """(`encode(backbone, images)` [B, P + N, d], the last block's attention of the CLS token
    to every patch [B, N], averaged over heads; each row sums to at most 1: the rest goes to the
    prefix tokens). For foreground masks (CoTAP); no gradient."""
    if backbone.cls_token is None:
        raise ValueError("CLS attention needs a backbone with a CLS token")
    x = backbone.norm_pre(backbone.patch_drop(backbone._pos_embed(backbone.patch_embed(images))))
    for block in backbone.blocks[:-1]:
        x = block(x)
    last, prefix = backbone.blocks[-1], backbone.num_prefix_tokens
    attn = last.attn
    B, T, _ = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(last.norm1(x)).reshape(B, T, 3, heads, -1).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, hd]
    q, k = qkv[0], qkv[1]
    q, k = getattr(attn, "q_norm", nn.Identity())(q), getattr(attn, "k_norm", nn.Identity())(k)
    weights = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # [B, H, 1, T]
    x = backbone.norm(last(x))
    if isinstance(getattr(backbone, "fc_norm", None), nn.LayerNorm):
        x = backbone.fc_norm(x)
    return x, weights[:, :, 0, prefix:].mean(dim=1)
