"""Options and checks shared by several subcommands."""

from __future__ import annotations

from pathlib import Path

import torch

from ..utils.devices import cuda_unavailable_reason, default_device
from . import UsageError


def add_device_argument(parser) -> None:
    """--device cpu|cuda[:i] (default: cuda when DSE can run there)."""
    parser.add_argument("--device", default=None,
                        help="cpu or cuda[:index] (default: cuda when a GPU is available and sdd_fast has its "
                             "CUDA kernels, else cpu)")


def resolve_device(name, dse: bool = True) -> torch.device:
    """The torch.device for --device; UsageError when it is unknown or unavailable, or (when the
    command computes DSE, `dse`) when it is cuda but sdd_fast lacks CUDA kernels: failing here
    beats failing at the first DSE call, after the data and model are set up."""
    if name is None:
        return default_device()
    try:
        device = default_device(name)
    except RuntimeError as error:
        raise UsageError(f"--device {name!r} is not a device ({error})") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda; got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is available (use --device cpu)")
    reason = cuda_unavailable_reason() if device.type == "cuda" and dse else None
    if reason is not None:
        raise UsageError(f"--device cuda: {reason} (use --device cpu)")
    return device


def add_data_argument(parser, default: str = "synthetic") -> None:
    """--data synthetic | imagefolder:PATH | voc:PATH."""
    parser.add_argument("--data", default=default,
                        help="synthetic (embedded, the default), imagefolder:PATH (unlabelled images, "
                             "training only) or voc:PATH (VOC-style JPEGImages + SegmentationClass)")


def existing_run_dir(path) -> Path:
    """--run OUT must be a directory; UsageError otherwise."""
    run = Path(path)
    if not run.is_dir():
        raise UsageError(f"--run {path}: no such run directory")
    return run


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a float >= 0."""
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value
