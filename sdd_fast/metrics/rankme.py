"""RankMe: the effective rank of an embedding matrix (Garrido, Balestriero, Najman, LeCun,
"RankMe: Assessing the downstream performance of pretrained self-supervised representations by
their rank", ICML 2023).

For embeddings Z [n, d] with singular values sigma_1..sigma_min(n,d):
    p_k = sigma_k / ||sigma||_1 + eps,    RankMe(Z) = exp(-sum_k p_k log p_k),    eps = 1e-7.
Z is not centred (as in the paper). The value lies in [1, min(n, d)] (up to eps).
"""

from __future__ import annotations

import math

import torch

from ._checks import check_matrix

EPS = 1e-7


def spectral_effective_rank(values: torch.Tensor, eps: float = EPS) -> float:
    """exp(entropy) of p = values / ||values||_1 + eps for a non-negative spectrum `values` [k].

    An all-zero spectrum (every embedding zero) has no direction and gives 0.0; a non-finite
    spectrum gives NaN."""
    values = values.double().clamp_min(0)
    total = values.sum()
    if not bool(torch.isfinite(total)):
        return math.nan
    if float(total) == 0.0:
        return 0.0
    p = values / total + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def rankme(z: torch.Tensor, eps: float = EPS) -> float:
    """RankMe of embeddings `z` [n, d] (rows: samples), e.g. CLS or pooled tokens.

    Returns:
        float in [1, min(n, d)]: exp of the entropy of the normalised singular values.
    """
    z = check_matrix("z", z)
    if not bool(torch.isfinite(z).all()):
        return math.nan
    return spectral_effective_rank(torch.linalg.svdvals(z), eps)


def dense_rankme(feats: torch.Tensor, eps: float = EPS) -> float:
    """RankMe over all patch tokens of a batch: `feats` [B, N, d] -> rankme(feats.reshape(B * N, d))."""
    if not isinstance(feats, torch.Tensor) or feats.dim() != 3:
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise ValueError(f"feats must be a Tensor [B, N, d]; got {shape}")
    return rankme(feats.reshape(-1, feats.shape[-1]), eps)
