"""alpha-ReQ: the power-law decay exponent of the eigenspectrum (Agrawal, Mondal, Ghosh,
Richards, "alpha-ReQ: Assessing representation quality in self-supervised learning by measuring
eigenspectrum decay", NeurIPS 2022).

For embeddings Z [n, d], the eigenvalues lambda_1 >= lambda_2 >= ... of the covariance
(1 / n) (Z - mean)^T (Z - mean) are fitted as lambda_i ~ c * i^(-alpha) by least squares of
log lambda_i on log i over the ranks i = first..last (1-based, inclusive). The default range
is every rank the sample can support: 1..min(n - 1, d), stopping before the first eigenvalue
under 1e-12 of the largest (numerically zero). Smaller alpha: a flatter spectrum, more
dimensions in use.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ._checks import check_matrix

ZERO_EIGENVALUE = 1e-12  # relative to the largest eigenvalue


def eigenspectrum(z: torch.Tensor) -> torch.Tensor:
    """Covariance eigenvalues of embeddings `z` [n, d], descending, float64 [min(n, d)]."""
    z = check_matrix("z", z, min_rows=2)
    centred = z - z.mean(0)
    values = torch.linalg.svdvals(centred) ** 2 / z.shape[0]
    return values  # svdvals are sorted descending


def alpha_req(z: torch.Tensor, first: int = 1, last: Optional[int] = None) -> float:
    """Power-law exponent alpha of the covariance eigenspectrum of `z` [n, d].

    Args:
        z (Tensor[n, d]): embeddings, n >= 3.
        first, last (int): 1-based inclusive rank range of the fit (default 1..min(n - 1, d),
            cut before the first numerically zero eigenvalue); at least 2 ranks must remain.

    Returns:
        float: alpha (NaN when the embeddings are non-finite or fewer than 2 ranks are non-zero).
    """
    z = check_matrix("z", z, min_rows=3)
    limit = min(z.shape[0] - 1, z.shape[1])
    last = limit if last is None else last
    if not 1 <= first < last <= limit:
        raise ValueError(f"rank range first={first}, last={last} must satisfy 1 <= first < last <= "
                         f"min(n - 1, d) = {limit}")
    if not bool(torch.isfinite(z).all()):
        return math.nan
    values = eigenspectrum(z)[first - 1:last]
    nonzero = values > ZERO_EIGENVALUE * values[0].clamp_min(torch.finfo(torch.float64).tiny)
    count = int(nonzero.long().cumprod(0).sum())  # ranks before the first numerically zero one
    if count < 2:
        return math.nan
    ranks = torch.arange(first, first + count, dtype=torch.float64, device=values.device)
    x, y = torch.log(ranks), torch.log(values[:count])
    x = x - x.mean()
    slope = (x * (y - y.mean())).sum() / (x * x).sum()
    return float(-slope)
