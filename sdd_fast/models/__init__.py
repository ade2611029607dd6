"""Backbones (timm ViTs) and the token helpers every trainer and evaluator shares."""

from .vit import DEFAULT_ARCH, build_backbone, encode, encode_with_cls_attention, grid_size, patch_tokens, split_tokens

__all__ = ["DEFAULT_ARCH", "build_backbone", "encode", "encode_with_cls_attention", "grid_size", "patch_tokens",
           "split_tokens"]
