"""Texture bank of the synthetic scenes: grayscale source images sampled under random affine maps.

Object textures define the classes (the same for every dataset seed): one real photograph
shipped with scikit-image (brick) and seven procedural patterns, each with its own spatial
frequency and orientation at the scale of an 8 x 8 patch (scenes keep textures upright, up to
a small tilt, so orientation is part of the class). Background
sources are other scikit-image photographs. Every source is a float32 image in [0, 1],
normalised to a common contrast, and stored at the scale where one source pixel is one image
pixel, for the requested image size (feature sizes scale with the image: a 128 x 128 scene is
the 64 x 64 one at twice the resolution).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REFERENCE_SIZE = 64  # image side at which the feature sizes below are given, in pixels

# Object textures, in class order (class k + 1 uses texture k).
OBJECT_TEXTURES = ("brick", "stripes", "diagonals", "checker", "grid", "dots", "waves", "noise")
# Real textures: source zoom at REFERENCE_SIZE (brick rows ~23 px -> ~5 px).
_REAL_ZOOM = {"brick": 0.21}
# Background photographs (grayscale), each shown with a random tint.
BACKGROUND_SOURCES = ("camera", "moon", "coins", "astronaut", "coffee", "chelsea", "rocket",
                      "hubble_deep_field", "immunohistochemistry", "page", "cell")
_PROCEDURAL_SIDE = 160  # procedural source side at REFERENCE_SIZE, pixels


def _normalise(x: np.ndarray) -> np.ndarray:
    """Zero mean, fixed contrast, clipped to [0, 1]: every texture spans a similar range."""
    x = x.astype(np.float64)
    z = (x - x.mean()) / max(x.std(), 1e-6)
    return np.clip(0.5 + 0.3 * z, 0.0, 1.0).astype(np.float32)


def _gray(name: str) -> np.ndarray:
    """A scikit-image sample image as float grayscale [H, W] (no download: these ship with it)."""
    import skimage.data  # imported lazily: only the synthetic dataset needs scikit-image

    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return img


def _resize(img: np.ndarray, zoom: float) -> np.ndarray:
    """Antialiased resize of a float [H, W] image by `zoom`."""
    h, w = img.shape
    size = (max(8, round(w * zoom)), max(8, round(h * zoom)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)


def _procedural(name: str, f: float) -> np.ndarray:
    """Procedural texture `name` [n, n] with its feature sizes multiplied by `f`."""
    n = round(_PROCEDURAL_SIDE * f)
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / f + 0.5  # reference-pixel coordinates
    if name == "stripes":  # vertical, period 5 px, soft square wave
        return np.tanh(3.0 * np.sin(2 * math.pi * x / 5.0))
    if name == "diagonals":  # 45 degrees, period 3.5 px across
        return np.tanh(3.0 * np.sin(2 * math.pi * (x + y) / (3.5 * math.sqrt(2))))
    if name == "grid":  # thin dark lines both ways, period 6 px
        return 1.0 - np.maximum(np.exp(-((x % 6.0) - 3.0) ** 2), np.exp(-((y % 6.0) - 3.0) ** 2))
    if name == "checker":  # 3 px cells
        return np.tanh(3.0 * np.sin(math.pi * x / 3.0) * np.sin(math.pi * y / 3.0))
    if name == "dots":  # hexagonal lattice of dots, spacing 4.5 px, radius 1.3 px
        a = 4.5
        rows = np.floor(y / (a * math.sqrt(3) / 2))
        xs = x + (rows % 2) * a / 2
        dx = (xs % a) - a / 2
        dy = (y % (a * math.sqrt(3) / 2)) - a * math.sqrt(3) / 4
        return -np.tanh(2.0 * (np.hypot(dx, dy) - 1.3))
    if name == "waves":  # wavy lines: period 4.5 px across, wavelength 10 px along
        return np.sin(2 * math.pi * (y + 1.6 * np.sin(2 * math.pi * x / 10.0)) / 4.5)
    if name == "noise":  # fine static: i.i.d. noise, fixed seed (the texture defines the class)
        rng = np.random.default_rng(20251017)
        return rng.random((n, n))
    raise ValueError(f"unknown texture {name!r}")


@functools.lru_cache(maxsize=8)
def object_bank(img_size: int) -> tuple[torch.Tensor, ...]:
    """The object textures for scenes of side `img_size`.

    Returns:
        tuple of Tensor[1, 1, H_k, W_k]: float32 in [0, 1], one per entry of OBJECT_TEXTURES.
    """
    f = img_size / REFERENCE_SIZE
    out = []
    for name in OBJECT_TEXTURES:
        src = _resize(_gray(name), _REAL_ZOOM[name] * f) if name in _REAL_ZOOM else _procedural(name, f)
        out.append(torch.from_numpy(_normalise(src))[None, None])
    return tuple(out)


@functools.lru_cache(maxsize=8)
def background_bank(img_size: int) -> tuple[torch.Tensor, ...]:
    """Background photographs, short side 1.5 * `img_size`.

    Returns:
        tuple of Tensor[1, 1, H_k, W_k]: float32 in [0, 1], one per entry of BACKGROUND_SOURCES.
    """
    out = []
    for name in BACKGROUND_SOURCES:
        img = _gray(name)
        out.append(torch.from_numpy(_normalise(_resize(img, 1.5 * img_size / min(img.shape))))[None, None])
    return tuple(out)


def sample(source: torch.Tensor, center: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor,
           offset: torch.Tensor, size: int) -> torch.Tensor:
    """Sample `source` under one affine map per instance, on a size x size pixel grid.

    Image pixel p maps to source point offset + scale * R(angle) (p - center); outside the
    source, the texture is mirrored.

    Args:
        source (Tensor[1, 1, H, W]): texture.
        center (Tensor[n, 2]): (x, y) image point mapped to `offset`, pixels.
        angle (Tensor[n]): rotation, radians.
        scale (Tensor[n]): source pixels per image pixel.
        offset (Tensor[n, 2]): (x, y) source point, pixels.
        size (int): image side.

    Returns:
        Tensor[n, size, size]: float32 texture values.
    """
    n = center.shape[0]
    if n == 0:
        return torch.empty(0, size, size)
    h, w = source.shape[-2:]
    p = torch.arange(size, dtype=torch.float32) + 0.5
    dx = p.view(1, 1, size) - center[:, 0].view(n, 1, 1)  # [n, 1, size]
    dy = p.view(1, size, 1) - center[:, 1].view(n, 1, 1)  # [n, size, 1]
    c, s = (torch.cos(angle) * scale).view(n, 1, 1), (torch.sin(angle) * scale).view(n, 1, 1)
    sx = offset[:, 0].view(n, 1, 1) + c * dx - s * dy
    sy = offset[:, 1].view(n, 1, 1) + s * dx + c * dy
    # Normalised coordinates (align_corners=False); all instances in one tall grid, one call.
    grid = torch.stack((2 * sx / w - 1, 2 * sy / h - 1), dim=-1).reshape(1, n * size, size, 2)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.view(n, size, size)
