"""Baseline: the DSE metric in vectorized plain PyTorch (batched over images, groups and clusters).

What a careful PyTorch user would write without custom kernels: `sdd_fast.reference` with its
Python loops over images and clusters replaced by batched tensor ops.

- k-means: all problems of a level at once ([P, M, d]): greedy k-means++ seeding (as SPEC's
  default) drawn with `torch.multinomial` on the whole batch, then Lloyd iterations with a
  one-hot matmul for the centroid update; one host sync per iteration (the early stop).
- singular sums: the points of every cluster are gathered into a zero-padded block
  [P, k, n_max, d] (one host sync for n_max), centered, and the singular values come from
  `torch.linalg.eigvalsh` of the smaller of the Gram (n_max x n_max) or covariance (d x d).
- M_inter: one batched distance matrix per level; M_dim: `eigvalsh` of the N Gram matrices
  Y_n Y_n^T, using `sdd_fast.reference.patch_permutation` (so M_dim equals the compiled op's).

It follows SPEC's definition (the values match `sdd_fast.dse` up to k-means differences) and
is differentiable through autograd with the same constants (labels, centroids, permutation).
Not covered (a baseline for timing, not a product): collapse detection, non-finite input,
argument checks, caller-given labels.
"""

from __future__ import annotations

import math

import torch

from sdd_fast.core.reference import patch_permutation

NORM_EPS = 1e-12
ENTROPY_EPS = 1e-12
EIG_CUT = 1e-10  # eigenvalues below EIG_CUT * largest count as 0 (safe sqrt, no NaN gradient)


def _sqdist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances [P, M, K] between x [P, M, d] and c [P, K, d]."""
    d2 = (x * x).sum(-1, keepdim=True) - 2.0 * x @ c.transpose(1, 2) + (c * c).sum(-1).unsqueeze(1)
    return d2.clamp_min_(0.0)


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, tol: float = 1e-4, seed: int = 0):
    """Batched k-means of P problems x [P, M, d] -> (centroids [P, k, d], labels [P, M])."""
    P, M, _ = x.shape
    rows = torch.arange(P, device=x.device)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    n_candidates = 2 + int(math.log(k))

    # greedy k-means++: draw candidates by squared distance, keep the one of least potential
    first = torch.randint(M, (P,), generator=generator, device=x.device)
    chosen = [first]
    closest = _sqdist(x, x[rows, first].unsqueeze(1)).squeeze(2)  # [P, M]
    for _ in range(1, k):
        weights = torch.where(closest.sum(1, keepdim=True) > 0, closest, torch.ones_like(closest))
        candidates = torch.multinomial(weights, n_candidates, replacement=True, generator=generator)  # [P, c]
        to_candidates = _sqdist(x, x[rows.unsqueeze(1), candidates]).transpose(1, 2)  # [P, c, M]
        trials = torch.minimum(closest.unsqueeze(1), to_candidates)
        best = trials.sum(2).argmin(1)  # [P]
        chosen.append(candidates[rows, best])
        closest = trials[rows, best]
    centroids = x[rows.unsqueeze(1), torch.stack(chosen, 1)]  # [P, k, d]

    # Lloyd: problems stop individually once their centroid shift falls below tol
    active = torch.ones(P, dtype=torch.bool, device=x.device)
    for _ in range(iters):
        labels = _sqdist(x, centroids).argmin(2)
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)  # [P, M, k]
        counts = onehot.sum(1).unsqueeze(2)  # [P, k, 1]
        means = onehot.transpose(1, 2) @ x / counts.clamp_min(1.0)
        updated = torch.where((counts > 0) & active.view(P, 1, 1), means, centroids)
        shift = (updated - centroids).flatten(1).norm(dim=1)
        centroids = updated
        active &= shift >= tol
        if not bool(active.any()):  # the host sync a plain-PyTorch loop pays per iteration
            break
    return centroids, _sqdist(x, centroids).argmin(2)


def _safe_sqrt(lam: torch.Tensor) -> torch.Tensor:
    """sqrt of eigenvalues with tiny / negative ones set to 0 without NaN gradients."""
    keep = lam > EIG_CUT * lam.amax(-1, keepdim=True).clamp_min(NORM_EPS)
    return torch.where(keep, lam, torch.ones_like(lam)).sqrt() * keep


def cluster_singular_sums(x: torch.Tensor, labels: torch.Tensor, k: int):
    """S(cluster) for every cluster: (values [P, k], counts [P, k]); 0 where count < 2."""
    P, M, d = x.shape
    counts = torch.nn.functional.one_hot(labels, k).sum(1)  # [P, k]
    order = labels.argsort(dim=1, stable=True)  # points sorted by cluster
    sorted_labels = labels.gather(1, order)
    starts = counts.cumsum(1) - counts
    rank = torch.arange(M, device=x.device) - starts.gather(1, sorted_labels)  # position inside its cluster
    n_max = int(counts.max())  # host sync: the padded block's size
    index = torch.full((P, k, n_max), M, dtype=torch.long, device=x.device)  # M -> a zero row
    index[torch.arange(P, device=x.device).unsqueeze(1), sorted_labels, rank] = order
    padded = torch.cat([x, x.new_zeros(P, 1, d)], 1)
    pts = padded[torch.arange(P, device=x.device).view(P, 1, 1), index]  # [P, k, n_max, d]
    valid = (index < M).unsqueeze(-1)
    n = counts.to(x.dtype).unsqueeze(-1)
    mean = pts.sum(2) / n.clamp_min(1.0)
    centered = (pts - mean.unsqueeze(2)) * valid
    gram = centered @ centered.transpose(-1, -2) if n_max <= d else centered.transpose(-1, -2) @ centered
    sigma = _safe_sqrt(torch.linalg.eigvalsh(gram))
    denom = torch.sqrt(torch.clamp(counts.to(x.dtype) - 1.0, min=float(d)))
    values = sigma.sum(-1) / denom
    return torch.where(counts >= 2, values, torch.zeros_like(values)), counts


def nearest_other_distance(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[P]: mean over points of the distance to the nearest centroid other than their own."""
    with torch.no_grad():
        d2 = _sqdist(x, centroids)
        d2.scatter_(2, labels.unsqueeze(2), float("inf"))
        choice = d2.argmin(2)
    nearest = centroids.gather(1, choice.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return (x - nearest).norm(dim=-1).mean(1)


def _groups(x: torch.Tensor, group: int):
    """Consecutive groups of images as at most two batches: full groups, then the smaller rest."""
    B, N, d = x.shape
    full = (B // group) * group
    parts = []
    if full:
        parts.append(x[:full].reshape(B // group, group * N, d))
    if full < B:
        parts.append(x[full:].reshape(1, (B - full) * N, d))
    return parts


def effective_rank(y: torch.Tensor) -> torch.Tensor:
    """[Q]: exp(H(p)) / min(R, d) for y [Q, R, d], singular values from the smaller Gram."""
    Q, R, d = y.shape
    gram = y @ y.transpose(1, 2) if R <= d else y.transpose(1, 2) @ y
    sigma = _safe_sqrt(torch.linalg.eigvalsh(gram))
    p = sigma / sigma.sum(1, keepdim=True).clamp_min(NORM_EPS) + ENTROPY_EPS
    return torch.exp(-(p * p.log()).sum(1)) / min(R, d)


def dse(feats: torch.Tensor, *, local_k: int = 3, global_k: int = 24, group: int = 8, normalize: bool = True,
        iters: int = 20, tol: float = 1e-4, seed: int = 0) -> torch.Tensor:
    """[dse, inter, intra_image, intra_batch, dim] of feats [B, N, d] (fp32, or fp64 for fp64)."""
    x = feats.double() if feats.dtype == torch.float64 else feats.float()
    B, N, d = x.shape
    if normalize:
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)
    flat = x.reshape(B * N, d)
    scale = (flat - flat.mean(0, keepdim=True)).norm(dim=1).mean().clamp_min(NORM_EPS)

    # M_intra_image: k-means per image, all images at once
    _, local_labels = kmeans(x.detach(), local_k, iters=iters, tol=tol, seed=seed)
    values, counts = cluster_singular_sums(x, local_labels, local_k)
    usable = (counts >= 2).to(x.dtype)
    intra_image = ((values * usable).sum(1) / usable.sum(1)).mean() / scale

    # M_intra_batch, M_inter: k-means per group of images
    sums, n_clusters, inter = x.new_zeros(()), 0, []
    for g, points in enumerate(_groups(x, group)):
        group_seed = seed + 7919 * (g + 1)
        centroids, labels = kmeans(points.detach(), global_k, iters=iters, tol=tol, seed=group_seed)
        values, counts = cluster_singular_sums(points, labels, global_k)
        usable = counts >= 2
        sums = sums + (values * usable).sum()
        n_clusters = n_clusters + usable.sum()
        inter.append(nearest_other_distance(points, centroids, labels))
    intra_batch = sums / n_clusters / scale
    inter = torch.cat(inter).mean() / scale

    # M_dim: one patch per image at every position of a per-image permutation
    perm = patch_permutation(B, N, seed).to(x.device)
    shuffled = x[torch.arange(B, device=x.device).unsqueeze(1), perm].transpose(0, 1)  # [N, B, d]
    dim = effective_rank(shuffled).mean()
    total = inter + dim - (intra_image + intra_batch) / 2
    return torch.stack([total, inter, intra_image, intra_batch, dim])
