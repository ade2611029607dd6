"""Embedded synthetic patch features with a known amount of dense structure.

No download: everything is generated from a seed. `structured_feats` gives images whose
patches belong to a few object classes (clear clusters, high DSE); `degrade` pulls every
patch towards one shared direction, the way dense representations degrade (DSE falls),
and at strength 1 every patch is the same vector (collapse).
"""

from __future__ import annotations

import torch


def structured_feats(images: int = 16, patches: int = 196, dim: int = 384, classes_per_image: int = 3,
                     num_classes: int = 12, noise: float = 0.3, seed: int = 0) -> torch.Tensor:
    """[images, patches, dim] float32: each image shows `classes_per_image` of `num_classes`
    classes as contiguous regions; a patch is its class prototype plus isotropic noise."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.nn.functional.normalize(torch.randn(num_classes, dim, generator=g), dim=1)
    feats = torch.empty(images, patches, dim)
    for i in range(images):
        classes = torch.randperm(num_classes, generator=g)[:classes_per_image]
        cuts = torch.sort(torch.randint(1, patches, (classes_per_image - 1,), generator=g)).values
        region = torch.bucketize(torch.arange(patches), cuts, right=True)  # [patches] in [0, classes)
        feats[i] = prototypes[classes[region]]
    return feats + noise / dim**0.5 * torch.randn(images, patches, dim, generator=g)


def degrade(feats: torch.Tensor, strength: float, seed: int = 1) -> torch.Tensor:
    """Mix every patch with one shared direction: (1 - strength) * x + strength * u."""
    g = torch.Generator().manual_seed(seed)
    shared = torch.nn.functional.normalize(torch.randn(feats.shape[-1], generator=g), dim=0)
    return (1.0 - strength) * feats + strength * shared
