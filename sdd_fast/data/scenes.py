"""The embedded dense dataset: procedural scenes with per-pixel class labels (no download).

Each scene is a smooth, near-neutral background (gradient or low-frequency noise) with 1-3
objects on it. An object class is a shape AND a texture (disk of brick, square of stripes, ...);
every object gets a random pair of grey levels (with a faint tint), its texture maps between
them, so neither colour nor brightness says anything about the class: telling classes apart
takes texture and shape. A linear probe on raw 8 x 8 pixel patches therefore scores low, while
a model that has learned dense features can segment the scenes.

Scene i of a split depends only on (seed, split, i): its random draws come from its own
numpy Generator, and the rendering (vectorised over a chunk of scenes with torch) is
elementwise per scene. Splits are rendered once and cached in memory as uint8 tensors.
"""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from . import textures

SHAPES = ("disk", "square", "triangle", "ring", "cross", "ellipse", "star", "diamond")
CLASS_NAMES = ("background",) + SHAPES  # class k >= 1: shape SHAPES[k-1], texture OBJECT_TEXTURES[k-1]
NUM_CLASSES = len(CLASS_NAMES)
TRAIN_SIZE, VAL_SIZE = 2048, 256
# Background kinds drawn: 0 smooth gradient, 1 low-frequency noise, 2 photograph. Photographs
# make the data much harder (textured background vs textured objects): with them, neither a
# random ViT nor the micro ViT after a few hundred SSL steps beats "all background" in a linear
# probe, so they are off by default; BACKGROUND_KINDS = 3 turns them on.
BACKGROUND_KINDS = 2
MIN_OBJECTS, MAX_OBJECTS = 1, 3
SIZE_RANGE = (0.35, 0.7)  # object diameter (disk-equivalent area), fraction of the image side
TEXTURE_TILT = math.radians(15)  # textures are upright (or upside down) up to this tilt
# Backgrounds are near-neutral: grey levels in BACKGROUND_LEVELS with BACKGROUND_SATURATION of a
# random tint, so that they vary in brightness and pattern but a background colour is no easy
# way to tell scenes apart (with saturated backgrounds every SSL method here learns mostly
# background colour, and no linear probe finds the objects).
BACKGROUND_LEVELS = (0.35, 0.65)
BACKGROUND_SATURATION = 0.1
# Objects: two grey levels at least OBJECT_CONTRAST apart, each channel shifted by up to
# +-OBJECT_TINT / 2. With saturated random colours instead, the SSL methods tell images apart
# by object colour and never learn texture (their probe mIoU stays at the random network's).
OBJECT_CONTRAST = 0.4
OBJECT_TINT = 0.1
_CHUNK = 256  # scenes rendered per vectorised batch (bounds memory at large image sizes)
_NOISE_FIELDS = 16

# Fraction of the unit disk each shape fills; radii scale by sqrt(1 / fill) so that every shape
# covers the area of a disk of the drawn diameter (classes equally frequent on average).
_FILL = {"disk": 1.0, "square": 0.72, "triangle": 0.41, "ring": 0.75, "cross": 0.65,
         "ellipse": 0.55, "star": 0.42, "diamond": 0.38}
_RADIUS_GAIN = torch.tensor([math.sqrt(1.0 / _FILL[s]) for s in SHAPES])
# Star: a tip at (1, 0) and an inner vertex at radius 0.45, angle 36 degrees; the outward normal
# of the edge between them.
_STAR_TIP = (1.0, 0.0)
_STAR_NORMAL = (0.45 * math.sin(math.pi / 5), 1.0 - 0.45 * math.cos(math.pi / 5))


def _shape_mask(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside-test of `shape` (extent ~ the unit disk) at local coordinates u, v [n, S, S] -> bool."""
    if shape == "disk":
        return u * u + v * v <= 1.0
    if shape == "square":
        return torch.maximum(u.abs(), v.abs()) <= 0.75
    if shape == "triangle":  # equilateral, circumradius 1: inside all three edge half-planes
        inside = torch.ones_like(u, dtype=torch.bool)
        for k in range(3):
            a = math.pi / 2 + 2 * math.pi * k / 3
            inside &= u * math.cos(a) + v * math.sin(a) >= -0.5
        return inside
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.25)
    if shape == "cross":
        au, av = u.abs(), v.abs()
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if shape == "ellipse":
        return u * u + (v / 0.55) ** 2 <= 1.0
    if shape == "star":  # fold the angle onto [0, 36 deg], then test against one edge
        rho, theta = torch.hypot(u, v), torch.atan2(v, u)
        t = torch.remainder(theta, 2 * math.pi / 5)
        t = torch.minimum(t, 2 * math.pi / 5 - t)
        x, y = rho * torch.cos(t) - _STAR_TIP[0], rho * torch.sin(t) - _STAR_TIP[1]
        return x * _STAR_NORMAL[0] + y * _STAR_NORMAL[1] <= 0.0
    if shape == "diamond":
        return u.abs() / 0.6 + v.abs() <= 1.0
    raise ValueError(f"unknown shape {shape!r}")


def _split_code(split: str) -> int:
    return {"train": 0, "val": 1}.get(split, zlib.crc32(split.encode()))


def _grey_pairs(rng: np.random.Generator, n: int) -> np.ndarray:
    """n pairs of near-grey RGB colours in [0, 1] -> [n, 2, 3]: grey levels at least
    OBJECT_CONTRAST apart (first of 8 candidate pairs that is), plus one faint tint per pair."""
    cand = rng.random((n, 8, 2))
    ok = np.abs(cand[:, :, 0] - cand[:, :, 1]) >= OBJECT_CONTRAST  # [n, 8]
    first = np.where(ok.any(1), ok.argmax(1), 7)
    levels = cand[np.arange(n), first]  # [n, 2]
    tint = OBJECT_TINT * (rng.random((n, 1, 3)) - 0.5)
    return np.clip(levels[:, :, None] + tint, 0, 1)


@functools.lru_cache(maxsize=8)
def _noise_bank(size: int) -> torch.Tensor:
    """Fixed unit Gaussian fields [_NOISE_FIELDS, 3, S, S]; a scene uses one, cyclically shifted
    (cheaper than drawing S * S * 3 normals per scene)."""
    return torch.randn(_NOISE_FIELDS, 3, size, size, generator=torch.Generator().manual_seed(size))


def _pixel_noise(d: list[dict], size: int) -> torch.Tensor:
    """Each scene's sensor noise [B, 3, S, S], unit variance."""
    pick = torch.from_numpy(np.stack([x["noise_pick"] for x in d]))  # [B, 3]
    p = torch.arange(size)
    ys = (p.view(1, -1) + pick[:, 1:2]) % size  # [B, S]
    xs = (p.view(1, -1) + pick[:, 2:3]) % size
    ch = torch.arange(3).view(1, 3, 1, 1)
    return _noise_bank(size)[pick[:, 0].view(-1, 1, 1, 1), ch, ys[:, None, :, None], xs[:, None, None, :]]


def _neutral(colours: np.ndarray, channel_axis: int = -1) -> np.ndarray:
    """Uniform random RGB colours (channels on `channel_axis`) -> near-neutral ones: the grey level
    mapped into BACKGROUND_LEVELS, the tint scaled by BACKGROUND_SATURATION."""
    grey = colours.mean(channel_axis, keepdims=True)
    low, high = BACKGROUND_LEVELS
    return low + (high - low) * grey + BACKGROUND_SATURATION * (colours - grey)


def _draw(seed: int, split: str, index: int, size: int) -> dict:
    """All random choices of one scene, from its own Generator seeded by (seed, split, index)."""
    rng = np.random.default_rng([seed % 2**63, _split_code(split), index])
    n_obj = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    classes = np.zeros(MAX_OBJECTS, dtype=np.int64)
    classes[:n_obj] = rng.permutation(len(SHAPES))[:n_obj] + 1  # distinct classes per scene
    o = rng.random((MAX_OBJECTS, 9))
    b = rng.random(10)
    return dict(
        classes=classes,
        diameter=SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * o[:, 0],
        center=0.15 + 0.7 * o[:, 1:3],  # fraction of the side
        angle=2 * math.pi * o[:, 3],
        aspect=0.9 + 0.2 * o[:, 4],
        tex_angle=math.pi * (o[:, 5] > 0.5) + TEXTURE_TILT * (4 * (o[:, 5] % 0.5) - 1),
        tex_scale=np.exp(np.log(0.8) + (np.log(1.25) - np.log(0.8)) * o[:, 6]),
        tex_offset=o[:, 7:9],  # fraction of the texture source
        colours=_grey_pairs(rng, MAX_OBJECTS),
        bg_kind=int(b[0] * BACKGROUND_KINDS),  # 0 gradient, 1 low-frequency noise, 2 photograph
        bg_grad=b[1:3],  # direction, steepness
        bg_photo=min(int(b[3] * len(textures.BACKGROUND_SOURCES)), len(textures.BACKGROUND_SOURCES) - 1),
        bg_photo_map=b[4:8],  # angle, scale, offset x, offset y
        bg_mix=0.5 * b[8],  # weight of the colour field
        noise_sigma=0.03 * b[9],
        bg_colours=_neutral(rng.random((2, 3))),
        bg_noise=rng.random((4, 4)),
        bg_field=_neutral(rng.random((3, 3, 3)), channel_axis=0),
        noise_pick=rng.integers(0, [_NOISE_FIELDS, size, size]),  # field, shift y, shift x
    )


def _stack(draws: list[dict], key: str) -> torch.Tensor:
    return torch.from_numpy(np.stack([d[key] for d in draws])).float()


def _background(d: list[dict], size: int) -> torch.Tensor:
    """Tinted backgrounds [B, 3, S, S]: gradient, low-frequency noise or photograph, plus a smooth
    colour field."""
    n = len(d)
    kind = torch.tensor([x["bg_kind"] for x in d])
    p = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    grad = _stack(d, "bg_grad")
    a, steep = 2 * math.pi * grad[:, 0], 0.5 + 1.5 * grad[:, 1]
    g = torch.cos(a).view(n, 1, 1) * p.view(1, 1, -1) + torch.sin(a).view(n, 1, 1) * p.view(1, -1, 1)
    gray = (0.5 + steep.view(n, 1, 1) * g).clamp(0, 1)
    noise = F.interpolate(_stack(d, "bg_noise")[:, None], size=(size, size), mode="bicubic",
                          align_corners=True)[:, 0].clamp(0, 1)
    gray = torch.where((kind == 1).view(n, 1, 1), noise, gray)
    photo_idx = torch.tensor([x["bg_photo"] for x in d])
    pm = _stack(d, "bg_photo_map")
    bank = textures.background_bank(size)
    for k, src in enumerate(bank):
        idx = torch.nonzero((kind == 2) & (photo_idx == k)).flatten()
        if len(idx) == 0:
            continue
        h, w = src.shape[-2:]
        scale = 0.5 + 0.5 * pm[idx, 1]
        # Keep the window (side <= size * scale, any rotation) mostly inside the photograph.
        slack = torch.tensor([w, h], dtype=torch.float32) - size * scale[:, None]
        offset = torch.tensor([w / 2, h / 2]) + (pm[idx, 2:4] - 0.5) * slack.clamp(min=0)
        center = torch.full((len(idx), 2), size / 2)
        gray[idx] = textures.sample(src, center, 2 * math.pi * pm[idx, 0], scale, offset, size)
    cols = _stack(d, "bg_colours")  # [B, 2, 3]
    img = cols[:, 0, :, None, None] + (cols[:, 1] - cols[:, 0])[:, :, None, None] * gray[:, None]
    field = F.interpolate(_stack(d, "bg_field"), size=(size, size), mode="bilinear", align_corners=True)
    mix = _stack(d, "bg_mix").view(n, 1, 1, 1)
    return (1 - mix) * img + mix * field


def _render_chunk(d: list[dict], size: int, pixel_noise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Render the scenes drawn in `d` -> (images uint8 [B, 3, S, S], masks uint8 [B, S, S])."""
    n = len(d)
    img = _background(d, size)
    mask = torch.zeros(n, size, size, dtype=torch.uint8)
    classes = torch.from_numpy(np.stack([x["classes"] for x in d]))  # [B, K], 0 = empty slot
    diameter, center = _stack(d, "diameter"), _stack(d, "center") * size
    angle, aspect = _stack(d, "angle"), _stack(d, "aspect")
    tex_angle, tex_scale, tex_offset = _stack(d, "tex_angle"), _stack(d, "tex_scale"), _stack(d, "tex_offset")
    colours = _stack(d, "colours")  # [B, K, 2, 3]
    bank = textures.object_bank(size)
    p = torch.arange(size, dtype=torch.float32) + 0.5
    for slot in range(MAX_OBJECTS):  # later objects occlude earlier ones
        for c in range(1, NUM_CLASSES):
            idx = torch.nonzero(classes[:, slot] == c).flatten()
            if len(idx) == 0:
                continue
            m = len(idx)
            ctr = center[idx, slot]  # [m, 2]
            radius = (0.5 * size * diameter[idx, slot] * _RADIUS_GAIN[c - 1]).view(m, 1, 1)
            dx = p.view(1, 1, size) - ctr[:, 0].view(m, 1, 1)
            dy = p.view(1, size, 1) - ctr[:, 1].view(m, 1, 1)
            cos, sin = torch.cos(angle[idx, slot]).view(m, 1, 1), torch.sin(angle[idx, slot]).view(m, 1, 1)
            asp = aspect[idx, slot].view(m, 1, 1)
            u = (cos * dx + sin * dy) / (radius * asp)
            v = (cos * dy - sin * dx) * asp / radius
            inside = _shape_mask(SHAPES[c - 1], u, v)  # [m, S, S]
            src = bank[c - 1]
            offset = tex_offset[idx, slot] * torch.tensor([src.shape[-1], src.shape[-2]], dtype=torch.float32)
            t = textures.sample(src, ctr, tex_angle[idx, slot], tex_scale[idx, slot], offset, size)
            a, b = colours[idx, slot, 0], colours[idx, slot, 1]  # [m, 3]
            obj = a[:, :, None, None] + (b - a)[:, :, None, None] * t[:, None]
            img[idx] = torch.where(inside[:, None], obj, img[idx])
            mask[idx] = torch.where(inside, torch.tensor(c, dtype=torch.uint8), mask[idx])
    if pixel_noise:
        img = img + _stack(d, "noise_sigma").view(n, 1, 1, 1) * _pixel_noise(d, size)
    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, mask


def render_scenes(seed: int, split: str, indices, img_size: int = 64,
                  pixel_noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Render scenes `indices` of `split`.

    Args:
        seed (int): dataset seed.
        split (str): "train" or "val" (any other name is a further independent split).
        indices (iterable of int): scene numbers; scene i depends only on (seed, split, i).
        img_size (int): image side S, pixels.
        pixel_noise (bool): add the faint per-pixel sensor noise (off: exact object colours).

    Returns:
        (Tensor[N, 3, S, S] uint8 RGB images, Tensor[N, S, S] uint8 class masks in [0, NUM_CLASSES)).
    """
    if img_size < 8:
        raise ValueError(f"img_size must be >= 8; got {img_size}")
    indices = [int(i) for i in indices]
    images = torch.empty(len(indices), 3, img_size, img_size, dtype=torch.uint8)
    masks = torch.empty(len(indices), img_size, img_size, dtype=torch.uint8)
    # Many mid-sized elementwise ops: intra-op threads buy little and, on a busy machine, their
    # synchronisation can slow rendering down ten-fold. Render on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for start in range(0, len(indices), _CHUNK):
            part = indices[start:start + _CHUNK]
            draws = [_draw(seed, split, i, img_size) for i in part]
            images[start:start + len(part)], masks[start:start + len(part)] = _render_chunk(draws, img_size,
                                                                                            pixel_noise)
    finally:
        torch.set_num_threads(threads)
    return images, masks


@functools.lru_cache(maxsize=4)
def _cached(seed: int, split: str, length: int, img_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return render_scenes(seed, split, range(length), img_size)


class SyntheticScenes(Dataset):
    """One split of the embedded dataset, rendered on construction and cached in memory.

    Item i -> (image Tensor[3, S, S] uint8, mask Tensor[S, S] int64 in [0, NUM_CLASSES)).

    Args:
        split (str): "train" or "val".
        img_size (int): image side S, pixels (default 64).
        seed (int): dataset seed; the val split never shares scenes with the train split.
        length (int, optional): number of scenes (default 2048 for train, 256 for val).
    """

    num_classes = NUM_CLASSES
    class_names = list(CLASS_NAMES)

    def __init__(self, split: str = "train", img_size: int = 64, seed: int = 0, length: int | None = None):
        if length is None:
            length = TRAIN_SIZE if split == "train" else VAL_SIZE
        if length < 1:
            raise ValueError(f"length must be >= 1; got {length}")
        self.split, self.img_size, self.seed = split, img_size, seed
        self.images, self.masks = _cached(int(seed), split, int(length), int(img_size))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i].clone(), self.masks[i].long()
