"""LiDAR: the effective rank of the linear discriminant matrix of augmented views (Thilak,
Huang, Littwin, Saremi, Cretu, Ghosh, "LiDAR: Sensing linear probing performance in joint
embedding SSL architectures", ICLR 2024).

For embeddings e_ij of n surrogate classes (source images) i with q augmented views j each:
    mu_i = mean_j e_ij,   mu = mean_i mu_i,
    Sigma_b = 1 / (n - 1) sum_i (mu_i - mu)(mu_i - mu)^T,
    Sigma_w = 1 / (n (q - 1)) sum_ij (e_ij - mu_i)(e_ij - mu_i)^T + delta * I,
    Sigma_lidar = Sigma_w^-1/2 Sigma_b Sigma_w^-1/2,
    LiDAR = exp(-sum_k p_k log p_k),   p_k = lambda_k / ||lambda||_1 + eps,
with lambda the eigenvalues of Sigma_lidar, delta = 1e-4, eps = 1e-8.
"""

from __future__ import annotations

import torch

from .rankme import spectral_effective_rank

DELTA, EPS = 1e-4, 1e-8


def lidar(z: torch.Tensor, delta: float = DELTA, eps: float = EPS) -> float:
    """LiDAR of embeddings `z` [n, q, d]: n surrogate classes x q augmented views x d channels.

    Args:
        z (Tensor[n, q, d]): n >= 2 classes, q >= 2 views each.
        delta (float): ridge added to the within-class covariance (> 0).
        eps (float): added to the normalised eigenvalues before the entropy.

    Returns:
        float in [1, min(n - 1, d)]: the effective rank of the LDA matrix.
    """
    if not isinstance(z, torch.Tensor) or z.dim() != 3 or not z.is_floating_point():
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z must be a floating-point Tensor [n classes, q views, d]; got {shape}")
    n, q, d = z.shape
    if n < 2 or q < 2 or d < 1:
        raise ValueError(f"z needs n >= 2 classes and q >= 2 views; got [n={n}, q={q}, d={d}]")
    if not delta > 0:
        raise ValueError(f"delta must be > 0; got {delta}")
    z = z.detach().double()
    class_means = z.mean(1)  # [n, d]
    between = class_means - class_means.mean(0)
    sigma_b = between.T @ between / (n - 1)  # [d, d]
    within = (z - class_means[:, None]).reshape(n * q, d)
    sigma_w = within.T @ within / (n * (q - 1)) + delta * torch.eye(d, dtype=z.dtype, device=z.device)
    if not bool(torch.isfinite(sigma_w).all() & torch.isfinite(sigma_b).all()):
        return float("nan")
    w_vals, w_vecs = torch.linalg.eigh(sigma_w)  # sigma_w is SPD (delta > 0)
    inv_sqrt = (w_vecs * w_vals.clamp_min(delta).rsqrt()) @ w_vecs.T
    lda = inv_sqrt @ sigma_b @ inv_sqrt
    return spectral_effective_rank(torch.linalg.eigvalsh((lda + lda.T) / 2), eps)
