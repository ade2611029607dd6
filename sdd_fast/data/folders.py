"""Real-data readers: a folder of images (unlabelled) and a VOC-style segmentation folder.

Images are read with PIL as RGB, resized so that the short side is `img_size` (antialiased
bilinear) and center-cropped to img_size x img_size; masks get the same geometry with nearest
neighbour, so labels are never blended.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IGNORE_INDEX = 255  # VOC's "void" label (object borders, unlabelled pixels)
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
VAL_FRACTION = 0.2  # VOC folders without ImageSets/Segmentation: share of the ids kept for val


def find_images(root: Path) -> list[Path]:
    """Every image file under `root` (recursive; extensions IMAGE_EXTENSIONS, any case), sorted."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def read_image(path: Path) -> torch.Tensor:
    """An image file as RGB uint8 Tensor[3, H, W] (EXIF orientation applied)."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


def _voc_palette_lookup() -> np.ndarray:
    """[2**24] int64: RGB colour (packed) -> VOC class index, IGNORE_INDEX elsewhere."""
    lut = np.full(2**24, IGNORE_INDEX, dtype=np.int64)
    for k in range(len(VOC_CLASSES)):  # VOC's bit-interleaved colour map
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        lut[(r << 16) | (g << 8) | b] = k
    return lut


def read_mask(path: Path) -> torch.Tensor:
    """A segmentation mask as int64 Tensor[H, W] of class indices (IGNORE_INDEX = void).

    Palette ("P") and grayscale PNGs hold the indices themselves; an RGB mask is decoded with
    the VOC colour map (unknown colours become IGNORE_INDEX).
    """
    try:
        with Image.open(path) as img:
            if img.mode in ("P", "L", "I", "I;16"):
                return torch.from_numpy(np.asarray(img).astype(np.int64))
            rgb = np.asarray(img.convert("RGB")).astype(np.int64)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read mask {path}: {error}") from None
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return torch.from_numpy(_voc_palette_lookup()[packed])


def resize_crop(x: torch.Tensor, size: int, nearest: bool = False) -> torch.Tensor:
    """Resize the short side of x [..., H, W] to `size`, then center-crop to [..., size, size].

    Bilinear with antialiasing for images; nearest for masks (`nearest=True`).
    """
    mode = InterpolationMode.NEAREST if nearest else InterpolationMode.BILINEAR
    x = TF.resize(x, [size], interpolation=mode, antialias=not nearest)
    return TF.center_crop(x, [size, size])


class ImageFiles(Dataset):
    """Images read from a list of files. Item i -> uint8 Tensor[3, S, S].

    Args:
        paths (list of Path): image files.
        img_size (int): output side S (short-side resize, center crop).
    """

    def __init__(self, paths: list[Path], img_size: int):
        self.paths, self.img_size = list(paths), img_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return resize_crop(read_image(self.paths[i]), self.img_size)


def voc_files(root: Path) -> dict[str, tuple[Path, Path]]:
    """id -> (image, mask) for every mask SegmentationClass/<id>.png with an image JPEGImages/<id>.*"""
    root = Path(root)
    images = {p.stem: p for p in sorted((root / "JPEGImages").iterdir())
              if p.suffix.lower() in IMAGE_EXTENSIONS}
    masks = {p.stem: p for p in sorted((root / "SegmentationClass").iterdir()) if p.suffix.lower() == ".png"}
    return {i: (images[i], masks[i]) for i in sorted(masks) if i in images}


def voc_ids(root: Path, split: str) -> list[str]:
    """The ids of `split` ("train" or "val") of a VOC-style folder.

    ImageSets/Segmentation/{train,val}.txt when both exist; otherwise a fixed 80/20 split of
    the ids that have both an image and a mask (the same split on every call and every seed).
    """
    root = Path(root)
    sets = root / "ImageSets" / "Segmentation"
    if (sets / "train.txt").is_file() and (sets / "val.txt").is_file():
        lines = (sets / f"{split}.txt").read_text().split("\n")
        return [line.split()[0] for line in lines if line.strip()]
    ids = sorted(voc_files(root))
    order = np.random.default_rng(0).permutation(len(ids))
    n_val = min(len(ids) - 1, max(1, round(VAL_FRACTION * len(ids)))) if len(ids) > 1 else 0
    chosen = order[:n_val] if split == "val" else order[n_val:]
    return [ids[k] for k in sorted(chosen)]


class VOCSegmentation(Dataset):
    """One split of a VOC-style folder (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/).

    Item i -> (image uint8 Tensor[3, S, S], mask int64 Tensor[S, S] in [0, 21) or IGNORE_INDEX).

    Args:
        root (Path): the folder.
        split (str): "train" or "val".
        img_size (int): output side S.
    """

    def __init__(self, root: Path, split: str, img_size: int):
        self.root, self.split, self.img_size = Path(root), split, img_size
        files = voc_files(self.root)
        self.ids = voc_ids(self.root, split)
        missing = [i for i in self.ids if i not in files]
        if missing:
            raise ValueError(f"--data voc:{self.root}: {split} id {missing[0]!r} has no image in JPEGImages/ "
                             f"or no mask SegmentationClass/{missing[0]}.png ({len(missing)} such ids)")
        if not self.ids:
            raise ValueError(f"--data voc:{self.root}: the {split} split holds no images")
        self.files = [files[i] for i in self.ids]

    def __len__(self) -> int:
        return len(self.files)

    def image_paths(self) -> list[Path]:
        """The image file of every item, in order."""
        return [image for image, _ in self.files]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.files[i]
        mask = read_mask(mask_path)
        bad = (mask >= len(VOC_CLASSES)) & (mask != IGNORE_INDEX)
        if bad.any():
            raise ValueError(f"mask {mask_path} holds label {int(mask[bad][0])}; VOC masks hold "
                             f"0..{len(VOC_CLASSES) - 1} and {IGNORE_INDEX} (void)")
        image = resize_crop(read_image(image_path), self.img_size)
        mask = resize_crop(mask.to(torch.uint8)[None], self.img_size, nearest=True)[0]  # labels fit uint8
        return image, mask.long()
