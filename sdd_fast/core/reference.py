"""The metric in plain PyTorch: readable, differentiable, float64-capable.

This is the independent check the tests hold the compiled ops to, and `backend="reference"`
for users without the compiled library. It follows docs/SPEC.md step by step with SVDs and
Python loops over images and clusters; it is slow on purpose (clarity over speed).

Its k-means is a separate, careful implementation (greedy k-means++ drawn from a
`torch.Generator`, never the global RNG); with given labels it reproduces the compiled
ops' numbers, including the M_dim permutation (the same Philox draws, computed here).
"""

from __future__ import annotations

import math

import torch

from .options import DEFAULTS, DSE_FIELDS, compute_dtype

NORM_EPS = 1e-12
ENTROPY_EPS = 1e-12
COLLAPSE_FRACTION = 1e-6


# ---- randomness: Philox4x32-10, as csrc/common/philox.h --------------------------------------
_MASK32 = 0xFFFFFFFF
_PERMUTATION_STREAM = 2


def _mulhilo32(a: torch.Tensor, b: int):
    """(hi, lo) 32-bit halves of a * b for uint32 values held in int64 tensors."""
    p_lo = a * (b & 0xFFFF)  # < 2^48
    p_hi = a * (b >> 16)  # < 2^48
    hi = (p_hi + (p_lo >> 16)) >> 16
    lo = (((p_hi & 0xFFFF) << 16) + p_lo) & _MASK32
    return hi & _MASK32, lo


def philox_u32(seed: int, stream: int, problem: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """First 32-bit word of Philox4x32-10 for counter (counter, problem, stream, counter >> 32)."""
    c0, c1 = counter & _MASK32, problem & _MASK32
    c2 = torch.full_like(counter, stream)
    c3 = (counter >> 32) & _MASK32
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    for _ in range(10):
        hi0, lo0 = _mulhilo32(c0, 0xD2511F53)
        hi1, lo1 = _mulhilo32(c2, 0xCD9E8D57)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + 0x9E3779B9) & _MASK32, (k1 + 0xBB67AE85) & _MASK32
    return c0


def patch_permutation(batch: int, patches: int, seed: int) -> torch.Tensor:
    """[B, N] int64: for every image, its patches sorted by Philox keys (seed, image, patch)."""
    problem = torch.arange(batch, dtype=torch.int64).unsqueeze(1).expand(batch, patches)
    counter = torch.arange(patches, dtype=torch.int64).unsqueeze(0).expand(batch, patches)
    keys = philox_u32(seed, _PERMUTATION_STREAM, problem, counter)
    return torch.sort(keys, dim=1, stable=True).indices


# ---- the pieces of the metric --------------------------------------------------------------


def normalize_patches(x: torch.Tensor) -> torch.Tensor:
    """x / max(||x||, 1e-12) over the last dimension."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_EPS)


def centered_singular_sum(points: torch.Tensor) -> torch.Tensor:
    """S(X) = sum(svdvals(X - mean)) / sqrt(max(n - 1, d)) for points [n, d]."""
    n, d = points.shape
    centered = points - points.mean(dim=0, keepdim=True)
    return torch.linalg.svdvals(centered).sum() / math.sqrt(max(n - 1, d))


def effective_rank(y: torch.Tensor) -> torch.Tensor:
    """exp(H(p)) / min(R, d), p = sigma / sum(sigma) + 1e-12, for y [R, d] (not centered)."""
    sigma = torch.linalg.svdvals(y)
    p = sigma / sigma.sum().clamp_min(NORM_EPS) + ENTROPY_EPS
    return torch.exp(-(p * p.log()).sum()) / min(y.shape)


def nearest_other_distance(points: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor,
                           usable: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over points of the distance to the nearest centroid other than their own."""
    distances = torch.cdist(points.unsqueeze(0), centroids.unsqueeze(0)).squeeze(0)  # [M, k]
    excluded = torch.zeros_like(distances, dtype=torch.bool)
    excluded[torch.arange(len(labels)), labels] = True
    if usable is not None:
        excluded |= ~usable.unsqueeze(0)
    if bool(excluded.all(dim=1).any()):  # a point with no other centroid contributes 0
        nearest = distances.masked_fill(excluded, float("inf")).min(dim=1).values
        return torch.where(torch.isinf(nearest), torch.zeros_like(nearest), nearest).mean()
    choice = distances.detach().masked_fill(excluded, float("inf")).argmin(dim=1)
    exact = (points - centroids[choice]).norm(dim=1)  # differentiable, same choice
    return exact.mean()


def kmeans(x: torch.Tensor, k: int, *, iters: int = DEFAULTS.iters, tol: float = DEFAULTS.tol,
           n_init: int = DEFAULTS.n_init, seeding: str = DEFAULTS.seeding, seed: int = DEFAULTS.seed):
    """k-means of points [M, d] as SPEC describes, seeded from a private torch.Generator.

    Returns (centroids [k, d], labels [M], inertia 0-d tensor).
    """
    x = x.detach()
    generator = torch.Generator().manual_seed(seed)
    threshold = tol * float(x.double().pow(2).sum(1).mean().sqrt())  # tol x RMS point norm (SPEC)
    best = None
    for _ in range(n_init):
        centroids = _kmeans_pp(x, k, seeding, generator)
        for _ in range(iters):
            labels = torch.cdist(x, centroids).argmin(dim=1)
            updated = centroids.clone()
            for c in range(k):
                members = x[labels == c]
                if len(members):
                    updated[c] = members.mean(dim=0)
            shift = (updated - centroids).norm()
            centroids = updated
            if shift < threshold:
                break
        labels = torch.cdist(x, centroids).argmin(dim=1)
        inertia = ((x - centroids[labels]) ** 2).sum()
        if best is None or inertia < best[2]:
            best = (centroids, labels, inertia)
    return best


def _kmeans_pp(x: torch.Tensor, k: int, seeding: str, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: "greedy" keeps the best of 2 + floor(ln k) D^2 candidates per step."""
    M = x.shape[0]
    chosen = [int(torch.randint(M, (1,), generator=generator))]
    closest = ((x - x[chosen[0]]) ** 2).sum(dim=1)
    n_candidates = 2 + int(math.log(k)) if seeding == "greedy" else 1
    for _ in range(1, k):
        weights = closest.sqrt() if seeding == "d" else closest
        if not bool(weights.sum() > 0):
            weights = torch.ones_like(weights)
        candidates = torch.multinomial(weights.double().cpu(), n_candidates, replacement=True, generator=generator)
        trials = torch.minimum(closest.unsqueeze(0), ((x.unsqueeze(0) - x[candidates].unsqueeze(1)) ** 2).sum(-1))
        potentials = (trials.sqrt() if seeding == "d" else trials).sum(dim=1)
        best = int(potentials.argmin())
        chosen.append(int(candidates[best]))
        closest = trials[best]
    return x[chosen].clone()


def _compute(feats: torch.Tensor) -> torch.Tensor:
    return feats.to(compute_dtype(feats))


def dse_components(feats: torch.Tensor, *, local_k: int = DEFAULTS.local_k, global_k: int = DEFAULTS.global_k,
                   group: int = DEFAULTS.group, normalize: bool = DEFAULTS.normalize, iters: int = DEFAULTS.iters,
                   tol: float = DEFAULTS.tol, n_init: int = DEFAULTS.n_init, seeding: str = DEFAULTS.seeding,
                   seed: int = DEFAULTS.seed, local_labels: torch.Tensor | None = None,
                   global_labels: torch.Tensor | None = None, perm: torch.Tensor | None = None) -> dict:
    """Every component of SPEC steps 1-7 (unnormalised too), for tests and inspection.

    `perm` [B, N] overrides the M_dim permutation (default: the compiled ops' Philox draws).
    """
    x = _compute(feats)
    if not bool(torch.isfinite(x).all()):
        nan = x.new_full((), float("nan"))
        return dict(dse=nan, inter=nan, intra_image=nan, intra_batch=nan, dim=nan)
    B, N, d = x.shape
    if normalize:
        x = normalize_patches(x)
    flat = x.reshape(B * N, d)
    scale = (flat - flat.mean(dim=0, keepdim=True)).norm(dim=1).mean()
    collapsed = bool(scale <= COLLAPSE_FRACTION * flat.norm(dim=1).mean())

    zero = x.new_zeros(())
    inter = intra_image = intra_batch = zero
    if not collapsed:
        image_values = []
        for b in range(B):
            labels = (local_labels[b] if local_labels is not None else
                      kmeans(x[b], local_k, iters=iters, tol=tol, n_init=n_init, seeding=seeding, seed=seed + b)[1])
            sums = [centered_singular_sum(x[b][labels == c]) for c in range(local_k) if (labels == c).sum() >= 2]
            image_values.append(torch.stack(sums).mean())
        intra_image = torch.stack(image_values).mean() / scale

        cluster_values, group_inter = [], []
        for g, start in enumerate(range(0, B, group)):
            points = x[start:start + group].reshape(-1, d)
            usable = None
            if global_labels is not None:
                labels = global_labels[g, : len(points)]
                counts = torch.bincount(labels, minlength=global_k)
                usable = counts > 0
                centroids = torch.stack([points[labels == c].mean(dim=0) if counts[c] > 0 else points.new_zeros(d)
                                         for c in range(global_k)]).detach()
            else:
                centroids, labels, _ = kmeans(points, global_k, iters=iters, tol=tol, n_init=n_init,
                                              seeding=seeding, seed=seed + 7919 * (g + 1))
            cluster_values += [centered_singular_sum(points[labels == c]) for c in range(global_k)
                               if (labels == c).sum() >= 2]
            group_inter.append(nearest_other_distance(points, centroids, labels, usable))
        intra_batch = torch.stack(cluster_values).mean() / scale
        inter = torch.stack(group_inter).mean() / scale

    perm = patch_permutation(B, N, seed) if perm is None else perm
    shuffled = x[torch.arange(B).unsqueeze(1), perm.to(x.device)]  # [B, N, d]
    dim = torch.stack([effective_rank(shuffled[:, n]) for n in range(N)]).mean()
    total = inter + dim - (intra_batch + intra_image) / 2
    return dict(dse=total, inter=inter, intra_image=intra_image, intra_batch=intra_batch, dim=dim,
                scale=scale, collapsed=collapsed)


def dse(feats: torch.Tensor, **options) -> torch.Tensor:
    """[dse, inter, intra_image, intra_batch, dim] as one tensor, like torch.ops.sdd.dse."""
    parts = dse_components(feats, **options)
    return torch.stack([parts[name] for name in DSE_FIELDS])


# ---- continuous-target AP loss (sdd_fast.core.ap_loss) -----------------------------------------


def continuous_ap_loss(scores: torch.Tensor, targets: torch.Tensor, weight_scale: torch.Tensor | None = None, *,
                       theta: float, lam: float, tau: float, hard_step: bool = False) -> torch.Tensor:
    """Per-anchor losses [A] (float64) of sdd_fast.continuous_ap_loss, from all C x C pairs at once.

    Differentiable in `scores` through N_j (P_j, a count, is constant); O(A C^2) memory."""
    s, t = scores.double(), targets.detach().double()
    c = torch.ones_like(t) if weight_scale is None else weight_scale.detach().double()
    w = c * (t - theta).clamp_min(0)  # [A, C]
    s_j, s_k = s.unsqueeze(2), s.unsqueeze(1)  # [A, C, 1], [A, 1, C]: pair (j, k)
    t_j, t_k = t.unsqueeze(2), t.unsqueeze(1)
    P = ((t_k >= t_j) & (s_k >= s_j)).double().sum(2)
    x = s_j - s_k
    if hard_step:
        phi = (x <= 0).double()
    else:
        phi = torch.where(x < 0, 1 - 2 * x / tau, (1 - x.clamp(max=tau) / tau) ** 2)
    N = lam * ((t_j - t_k).clamp_min(0) * phi).sum(2)
    total = w.sum(1)
    losses = (w * N / (P + N)).sum(1) / torch.where(total != 0, total, torch.ones_like(total))
    return torch.where(torch.isfinite(s).all(1) & torch.isfinite(t).all(1) & torch.isfinite(c).all(1), losses,
                       torch.full_like(losses, float("nan")))
