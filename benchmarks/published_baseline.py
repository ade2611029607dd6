"""Baseline: the *structure* of the published DSE code, re-implemented in plain PyTorch.

The paper's public code (github EldercatSAM/SSL-Degradation, `estimator.py` for the monitor
and `DSE_regularizer.py` for the differentiable loss) was read to learn how it computes the
metric; this file is our own re-implementation of that structure, written for these benchmarks
so the speed-up of sdd_fast can be stated against the way the metric is computed in practice.
No code or text is copied. What it keeps from the published structure:

- Python loops over images (local k-means), over groups of images (global k-means), over
  clusters (one SVD per cluster) and over the N patch positions (one SVD per position);
- k-means++ seeding with one candidate per step drawn with weights proportional to the plain
  (not squared) distance, recomputing the distances to all chosen centroids at every step;
- the global RNG reseeded (`torch.manual_seed`) at the start of every k-means call, always
  with the same seed, and the M_dim permutation drawn from the global RNG (`torch.randperm`);
- Lloyd iterations with a Python loop over clusters for the update and a host sync
  (`.item()`) per iteration for the early stop;
- the final inertia summed point by point in Python (one `.item()` per point);
- the monitor (`differentiable=False`) gathering per-image / per-group values into Python
  lists and back into tensors; the regularizer (`differentiable=True`) stacking them instead
  so gradients flow.

What follows SPEC rather than the published code, so the numbers are comparable with
`sdd_fast.dse`: normalisation on by default, M_dim per patch position (as the published
monitor does; its regularizer uses one effective rank of all patches), clusters of one point
skipped, empty clusters keeping their centroid. Its k-means ("d" seeding, no n_init) differs
from sdd_fast's, so results agree only roughly. The caller's global RNG state is restored
afterwards (`torch.random.fork_rng`), so benchmarks do not disturb each other.
"""

from __future__ import annotations

import math

import torch


def _centered_singular_sum(points: torch.Tensor) -> torch.Tensor:
    n, d = points.shape
    centered = points - points.mean(dim=0)
    return torch.linalg.svdvals(centered).sum() / math.sqrt(max(n - 1, d))


def _effective_rank(y: torch.Tensor) -> torch.Tensor:
    sigma = torch.linalg.svdvals(y)
    p = sigma / (sigma.sum() + 1e-12) + 1e-12
    return torch.exp(-(p * torch.log(p)).sum()) / min(y.shape)


def _seed_plus_plus(points: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k-means++ seeding as published: reseed the global RNG, one draw per centroid, weights
    proportional to the distance to the nearest chosen centroid (all recomputed every step)."""
    torch.manual_seed(seed)
    first = torch.randint(0, points.shape[0], (1,))
    centroids = points[first.to(points.device)]
    for _ in range(k - 1):
        nearest = torch.cdist(points, centroids).min(dim=1).values
        weights = nearest / (nearest.sum() + 1e-12)
        if float(weights.sum()) == 0.0:
            weights = torch.full_like(weights, 1.0 / len(weights))
        pick = torch.multinomial(weights, 1)
        centroids = torch.cat([centroids, points[pick]], dim=0)
    return centroids


def _kmeans(points: torch.Tensor, k: int, iters: int, tol: float, seed: int, n_runs: int = 1):
    """(centroids, labels) of the run with the least inertia (the published default: 1 run)."""
    best = None
    for run in range(n_runs):
        centroids = _seed_plus_plus(points, k, seed + run)
        for _ in range(iters):
            labels = torch.cdist(points, centroids).argmin(dim=1)
            updated = []
            for c in range(k):
                members = points[labels == c]
                updated.append(members.mean(dim=0) if members.shape[0] > 0 else centroids[c])
            updated = torch.stack(updated)
            shift = (updated - centroids).pow(2).sum().sqrt().item()
            centroids = updated
            if shift < tol:
                break
        labels = torch.cdist(points, centroids).argmin(dim=1)
        inertia = 0.0
        for i in range(points.shape[0]):  # per-point work, one host sync each
            inertia += (points[i] - centroids[labels[i]]).pow(2).sum().item()
        if best is None or inertia < best[2]:
            best = (centroids, labels, inertia)
    return best[0], best[1]


def _collect(values: list, differentiable: bool) -> torch.Tensor:
    """Mean of a list of 0-d tensors: through Python floats (monitor) or stacked (regularizer)."""
    if differentiable:
        return torch.stack(values).mean()
    return torch.tensor([float(v) for v in values]).mean()


def _dse(x: torch.Tensor, local_k: int, global_k: int, group: int, normalize: bool, iters: int, tol: float,
         seed: int, differentiable: bool) -> torch.Tensor:
    B, N, d = x.shape
    if normalize:
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scale = torch.norm(x - x.mean(dim=(0, 1), keepdim=True), dim=-1).mean()

    # M_intra_image: one k-means per image, one SVD per cluster
    per_image = []
    for b in range(B):
        points = x[b]
        _, labels = _kmeans(points.detach(), local_k, iters, tol, seed)
        sums = []
        for c in range(local_k):
            members = points[labels == c]
            if members.shape[0] > 1:
                sums.append(_centered_singular_sum(members))
        if sums:
            per_image.append(torch.stack(sums).mean())

    # M_intra_batch and M_inter: one k-means per group of images
    per_cluster, per_group = [], []
    for start in range(0, B, group):
        points = x[start:start + group].reshape(-1, d)
        centroids, labels = _kmeans(points.detach(), global_k, iters, tol, seed)
        for c in range(global_k):
            members = points[labels == c]
            if members.shape[0] > 1:
                per_cluster.append(_centered_singular_sum(members))
        distances = torch.cdist(points, centroids).clone()
        distances[torch.arange(points.shape[0], device=x.device), labels] = float("inf")
        per_group.append(distances.min(dim=1).values.mean())

    # M_dim: a random permutation per image from the global RNG, one SVD per position
    perm = torch.stack([torch.randperm(N) for _ in range(B)]).to(x.device)
    shuffled = x[torch.arange(B, device=x.device).unsqueeze(1), perm].permute(1, 0, 2)
    dim = _collect([_effective_rank(shuffled[n]) for n in range(N)], differentiable)

    inter = _collect(per_group, differentiable).to(x.device) / scale
    intra_image = _collect(per_image, differentiable).to(x.device) / scale
    intra_batch = _collect(per_cluster, differentiable).to(x.device) / scale
    dim = dim.to(x.device)
    total = inter + dim - (intra_image + intra_batch) / 2
    return torch.stack([total, inter, intra_image, intra_batch, dim])


def dse(feats: torch.Tensor, *, local_k: int = 3, global_k: int = 24, group: int = 8, normalize: bool = True,
        iters: int = 20, tol: float = 1e-4, seed: int = 0, differentiable: bool = False) -> torch.Tensor:
    """[dse, inter, intra_image, intra_batch, dim] of feats [B, N, d], computed the published way.

    differentiable=False: the monitor's structure (no autograd, values through Python lists);
    differentiable=True: the regularizer's structure (gradients flow to `feats`).
    """
    x = feats.double() if feats.dtype == torch.float64 else feats.float()
    devices = [x.device] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        if differentiable:
            return _dse(x, local_k, global_k, group, normalize, iters, tol, seed, True)
        with torch.no_grad():
            return _dse(x, local_k, global_k, group, normalize, iters, tol, seed, False)
