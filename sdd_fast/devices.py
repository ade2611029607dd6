"""The one rule for a missing device argument: CUDA when available, else the CPU."""

from __future__ import annotations

import torch


def default_device(name=None) -> torch.device:
    """torch.device(name), or cuda when `name` is None and a GPU is available, else cpu."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
