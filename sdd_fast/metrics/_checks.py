"""Argument checks shared by the metrics: clear errors naming the argument, before any work."""

from __future__ import annotations

import torch


def check_matrix(name: str, z, min_rows: int = 1) -> torch.Tensor:
    """`z` as a float64 Tensor[n, d]; raises TypeError / ValueError naming `name`."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D [n, d]; got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {z.dtype}")
    if z.shape[0] < min_rows or z.shape[1] < 1:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 column; got shape {tuple(z.shape)}")
    return z.detach().double()
