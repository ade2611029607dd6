"""The --data option: parse a spec into a DataSource, and build its datasets.

    synthetic           the embedded procedural scenes (default; no download)
    imagefolder:PATH    every image under PATH, unlabelled: training only
    voc:PATH            a VOC-style folder: JPEGImages/, SegmentationClass/ (palette PNGs),
                        optionally ImageSets/Segmentation/{train,val}.txt
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from . import folders, scenes
from .folders import IGNORE_INDEX

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, RGB in [0, 1]
STD = (0.229, 0.224, 0.225)
KINDS = ("synthetic", "imagefolder", "voc")
SPLITS = ("train", "val")
_USAGE = "expected synthetic, imagefolder:PATH or voc:PATH"

__all__ = ["IGNORE_INDEX", "MEAN", "STD", "DataSource", "parse_data", "train_images", "segmentation_split",
           "num_classes", "class_names", "normalize"]


@dataclass(frozen=True)
class DataSource:
    """A parsed --data spec.

    Attributes:
        kind (str): "synthetic", "imagefolder" or "voc".
        path (Path, optional): the folder (None for synthetic).
    """

    kind: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data(spec: str) -> DataSource:
    """Parse and check a --data spec: "synthetic", "imagefolder:PATH" or "voc:PATH".

    The folder is checked now, so a typo fails before any training starts: an image folder must
    hold at least one image (searched recursively), a VOC folder JPEGImages/ and
    SegmentationClass/ with at least one mask whose image exists.

    Raises:
        ValueError: naming --data, for an unknown kind or a missing / unusable folder.
    """
    if isinstance(spec, DataSource):
        return spec
    text = str(spec).strip()
    kind, sep, rest = text.partition(":")
    if kind == "synthetic" and not sep:
        return DataSource("synthetic")
    if kind not in ("imagefolder", "voc") or not sep:
        raise ValueError(f"--data {text}: {_USAGE}")
    if not rest.strip():
        raise ValueError(f"--data {text}: missing PATH ({_USAGE})")
    path = Path(rest.strip()).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data {text}: no such directory")
    if kind == "imagefolder":
        if not folders.find_images(path):
            raise ValueError(f"--data {text}: no images ({', '.join(folders.IMAGE_EXTENSIONS)}) under {path}")
    else:
        for sub in ("JPEGImages", "SegmentationClass"):
            if not (path / sub).is_dir():
                raise ValueError(f"--data {text}: not a VOC-style folder (no {sub}/ in {path})")
        if not folders.voc_files(path):
            raise ValueError(f"--data {text}: no SegmentationClass/<id>.png mask has a JPEGImages/<id> image")
    return DataSource(kind, path)


def normalize(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB Tensor[..., 3, H, W] -> float32 Tensor[..., 3, H, W] normalised with MEAN / STD."""
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (image.float() / 255.0 - mean) / std


class _ImagesOnly(Dataset):
    """(image, mask) items -> image."""

    def __init__(self, pairs: Dataset):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pairs[i][0]


class _Normalized(Dataset):
    """(uint8 image, mask) items -> (normalised float32 image, int64 mask)."""

    def __init__(self, pairs: Dataset):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pairs[i]
        return normalize(image), mask


def _check_size(img_size: int) -> None:
    if int(img_size) != img_size or img_size < 8:
        raise ValueError(f"img_size must be an int >= 8; got {img_size!r}")


def _no_masks(source: DataSource) -> ValueError:
    return ValueError(f"--data {source} has no masks; the probe needs synthetic or voc:PATH")


def train_images(source: DataSource, img_size: int, seed: int = 0) -> Dataset:
    """Unlabelled training images of `source`.

    Args:
        source (DataSource | str): parsed (or raw) --data spec.
        img_size (int): image side S.
        seed (int): synthetic only: which scenes (the dataset seed); ignored for folders.

    Returns:
        Dataset: item i -> uint8 Tensor[3, S, S]. Synthetic: the train split (2048 scenes);
        imagefolder: every image under PATH; voc: the train-split images.
    """
    source, img_size = parse_data(source), int(img_size)
    _check_size(img_size)
    if source.kind == "synthetic":
        return _ImagesOnly(scenes.SyntheticScenes("train", img_size, seed))
    if source.kind == "imagefolder":
        return folders.ImageFiles(folders.find_images(source.path), img_size)
    return folders.ImageFiles(folders.VOCSegmentation(source.path, "train", img_size).image_paths(), img_size)


def segmentation_split(source: DataSource, split: str, img_size: int, seed: int = 0) -> Dataset:
    """A labelled split for the linear probe.

    Args:
        source (DataSource | str): synthetic or voc.
        split (str): "train" or "val".
        img_size (int): image side S.
        seed (int): synthetic only: the dataset seed; ignored for voc.

    Returns:
        Dataset: item i -> (image float32 Tensor[3, S, S] normalised with MEAN / STD,
        mask int64 Tensor[S, S] in [0, num_classes) or IGNORE_INDEX).

    Raises:
        ValueError: for imagefolder (no masks) or an unknown split.
    """
    source, img_size = parse_data(source), int(img_size)
    _check_size(img_size)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    if source.kind == "imagefolder":
        raise _no_masks(source)
    if source.kind == "synthetic":
        return _Normalized(scenes.SyntheticScenes(split, img_size, seed))
    return _Normalized(folders.VOCSegmentation(source.path, split, img_size))


def num_classes(source: DataSource) -> int:
    """Number of classes C of `source` (synthetic: 9, voc: 21): masks lie in [0, C) or IGNORE_INDEX."""
    return len(class_names(source))


def class_names(source: DataSource) -> list[str]:
    """The class names, index = mask value (class 0 is the background)."""
    source = parse_data(source)
    if source.kind == "synthetic":
        return list(scenes.CLASS_NAMES)
    if source.kind == "voc":
        return list(folders.VOC_CLASSES)
    raise _no_masks(source)
