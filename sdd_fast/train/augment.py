"""View generators of the SSL methods (torchvision.transforms.v2, on uint8 image tensors).

Each factory returns a callable: uint8 images [..., 3, H, W] -> list of normalised float views
[..., 3, h, w]. Like every v2 pipeline, one call draws one set of random parameters, shared by
all images of a stacked batch (see `stream.AugmentedStream` for how the trainers group them).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from ..data import MEAN, STD


def _photometric(blur_p: float, solarize_p: float = 0.0) -> list:
    """Colour jitter (no hue: it costs more than the rest together on small images), grayscale,
    blur (and solarize) as in BYOL / DINO."""
    ops = [
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2)], p=0.8),
        v2.RandomGrayscale(p=0.2),
    ]
    if blur_p > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.5))], p=blur_p))
    if solarize_p > 0:
        ops.append(v2.RandomSolarize(threshold=128, p=solarize_p))
    return ops


def _finish() -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]


class MultiCrop:
    """DINO / iBOT views: 2 global crops of `size`, then `local_crops` crops of size // 2."""

    def __init__(self, size: int, local_crops: int, global_scale=(0.3, 1.0), local_scale=(0.05, 0.3)):
        crop = dict(antialias=True)
        self.global1 = v2.Compose([v2.RandomResizedCrop(size, scale=global_scale, **crop), *_photometric(1.0),
                                   *_finish()])
        self.global2 = v2.Compose([v2.RandomResizedCrop(size, scale=global_scale, **crop),
                                   *_photometric(0.1, solarize_p=0.2), *_finish()])
        self.local = v2.Compose([v2.RandomResizedCrop(max(8, size // 2), scale=local_scale, **crop),
                                 *_photometric(0.5), *_finish()])
        self.local_crops = local_crops

    def __call__(self, image: torch.Tensor) -> list:
        return [self.global1(image), self.global2(image)] + [self.local(image) for _ in range(self.local_crops)]


class TwoViews:
    """MoCo v3 views: two crops of `size` with asymmetric blur / solarize (BYOL recipe)."""

    def __init__(self, size: int, scale=(0.2, 1.0)):
        self.view1 = v2.Compose([v2.RandomResizedCrop(size, scale=scale, antialias=True), *_photometric(1.0),
                                 *_finish()])
        self.view2 = v2.Compose([v2.RandomResizedCrop(size, scale=scale, antialias=True),
                                 *_photometric(0.1, solarize_p=0.2), *_finish()])

    def __call__(self, image: torch.Tensor) -> list:
        return [self.view1(image), self.view2(image)]


class OneView:
    """MAE view: a random resized crop and a flip, nothing photometric."""

    def __init__(self, size: int, scale=(0.2, 1.0)):
        self.view = v2.Compose([v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip(),
                                *_finish()])

    def __call__(self, image: torch.Tensor) -> list:
        return [self.view(image)]
