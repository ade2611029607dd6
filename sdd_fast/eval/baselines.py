"""The label-free baselines of a checkpoint (RankMe, dense RankMe, alpha-ReQ, LiDAR), measured on
fixed evaluation images so that every checkpoint sees the same inputs.

    views = lidar_views(images, views=8, seed=0)          # once per study: [n, q, 3, H, W]
    row = baseline_metrics(backbone, images, views)       # per checkpoint

Embeddings: patch tokens `[M, N, d]` (final norm, as DSE sees them) for dense RankMe and
alpha-ReQ; the CLS token (when the model has one) and the mean patch token for RankMe; the CLS
token (else the mean patch token) of each augmented view for LiDAR.
"""

from __future__ import annotations

import torch

from ..metrics import alpha_req, dense_rankme, lidar, rankme

BASELINE_KEYS = ("dense_rankme", "rankme_cls", "rankme_pooled", "alpha_req", "lidar")


def lidar_views(images: torch.Tensor, views: int = 8, seed: int = 0) -> torch.Tensor:
    """`views` augmented copies of each image (random resized crop, flip, colour jitter).

    Drawn under a forked global RNG seeded with `seed`: the same views for every call, and the
    caller's RNG is left as it was.

    Args:
        images (Tensor[n, 3, H, W]): normalised float images.

    Returns:
        Tensor[n, views, 3, H, W].
    """
    from torchvision.transforms import v2

    if views < 2:
        raise ValueError(f"views must be >= 2 (LiDAR needs within-image spread); got {views}")
    size = images.shape[-2:]
    augment = v2.Compose([v2.RandomResizedCrop(size, scale=(0.3, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                          v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2)], p=0.8)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = [torch.stack([augment(image) for _ in range(views)]) for image in images]
    return torch.stack(out)


@torch.no_grad()
def _embed(backbone, images: torch.Tensor, batch: int) -> tuple:
    """(cls [M, d] or None, patch tokens [M, N, d]) of images [M, 3, H, W], float32 on the CPU."""
    from ..models import encode, split_tokens

    device = next(backbone.parameters()).device
    cls_parts, patch_parts = [], []
    for start in range(0, images.shape[0], batch):
        cls, patches = split_tokens(backbone, encode(backbone, images[start:start + batch].to(device)))
        patch_parts.append(patches.float().cpu())
        if cls is not None:
            cls_parts.append(cls.float().cpu())
    return (torch.cat(cls_parts) if cls_parts else None), torch.cat(patch_parts)


def baseline_metrics(backbone, images: torch.Tensor, views: torch.Tensor, batch: int = 64) -> dict:
    """Every baseline of a timm ViT on the evaluation set.

    Args:
        backbone: timm VisionTransformer in eval mode.
        images (Tensor[M, 3, H, W]): evaluation images (normalised).
        views (Tensor[n, q, 3, H, W]): `lidar_views` output.
        batch (int): images per forward pass.

    Returns:
        {"dense_rankme", "rankme_cls" (None without a CLS token), "rankme_pooled", "alpha_req", "lidar"}.
    """
    cls, patches = _embed(backbone, images, batch)
    n, q = views.shape[:2]
    view_cls, view_patches = _embed(backbone, views.reshape(n * q, *views.shape[2:]), batch)
    view_embeddings = view_cls if view_cls is not None else view_patches.mean(1)
    return {
        "dense_rankme": dense_rankme(patches),
        "rankme_cls": rankme(cls) if cls is not None else None,
        "rankme_pooled": rankme(patches.mean(1)),
        "alpha_req": alpha_req(patches.reshape(-1, patches.shape[-1])),
        "lidar": lidar(view_embeddings.reshape(n, q, -1)),
    }
