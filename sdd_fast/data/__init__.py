"""Data: the embedded synthetic dense dataset and the real-data paths of --data.

    from sdd_fast.data import parse_data, train_images, segmentation_split
    source = parse_data("synthetic")                    # or "imagefolder:PATH", "voc:PATH"
    images = train_images(source, img_size=64)          # item -> uint8 [3, 64, 64]
    val = segmentation_split(source, "val", 64)         # item -> (float [3, 64, 64], int64 mask [64, 64])
"""

from .folders import IGNORE_INDEX, VOC_CLASSES
from .scenes import SyntheticScenes, render_scenes
from .sources import (
                      MEAN,
                      STD,
                      DataSource,
                      class_names,
                      normalize,
                      num_classes,
                      parse_data,
                      segmentation_split,
                      train_images,
)

__all__ = [
    "IGNORE_INDEX",
    "MEAN",
    "STD",
    "VOC_CLASSES",
    "DataSource",
    "SyntheticScenes",
    "class_names",
    "normalize",
    "num_classes",
    "parse_data",
    "render_scenes",
    "segmentation_split",
    "train_images",
]
