"""Typed wrappers of torch.ops.sdd and their fake kernels.

A fake kernel computes only output shapes and dtypes: it is what lets `torch.compile` and
`torch.export` trace through an op without running it. The autograd formulas are registered in
C++ (csrc/autograd/, the Autograd dispatch key), so libtorch users get gradients too: each calls
its backward op (C++/CUDA kernels of their own), and no Python runs in a backward pass.
"""

from __future__ import annotations

import torch

from .library import assert_has_ops, has_ops
from .options import DEFAULTS, check_float_tensor, check_kmeans_options
from .options import compute_dtype as _compute_dtype

# ---- public wrappers ---------------------------------------------------------------------


def kmeans(x, k, *, iters=DEFAULTS.iters, tol=DEFAULTS.tol, n_init=DEFAULTS.n_init, seeding=DEFAULTS.seeding,
           seed=DEFAULTS.seed):
    """Batched k-means (k-means++ seeding from a counter-based RNG, then Lloyd iterations).

    Args:
        x (Tensor[P, M, d]): P independent problems of M points in d dimensions.
        k (int): clusters per problem (1 <= k <= M).
        iters (int): Lloyd iterations at most; stops early when the centroid shift < `tol` x scale.
        tol (float): early-stop threshold on the Frobenius norm of the centroid update, relative to
            the problem's scale (root-mean-square norm of its points), so no result depends on it.
        n_init (int): seedings per problem; the run with the least inertia is kept.
        seeding (str): "greedy" (greedy k-means++, default), "d2" or "d" (see SPEC).
        seed (int): RNG key; the same seed and input give the same result. Torch's global
            RNG is neither read nor advanced.

    Returns:
        centroids (Tensor[P, k, d]), labels (Tensor[P, M] int64: nearest centroid after the
        last update), inertia (Tensor[P]: sum of squared distances to the assigned centroid).
        Outputs are constants (no gradient).
    """
    check_float_tensor("x", x, 3)
    check_kmeans_options(k, iters, tol, n_init, seeding, seed)
    assert_has_ops()
    return torch.ops.sdd.kmeans(x.detach(), k, iters, float(tol), n_init, seeding, seed)


def cluster_singular_sum(x, labels, k):
    """Centered singular sum S of every labelled cluster.

    Args:
        x (Tensor[P, M, d]): points.
        labels (Tensor[P, M] int64): cluster of every point, in [0, k).
        k (int): clusters per problem.

    Returns:
        values (Tensor[P, k]): S(cluster) = sum of singular values of the centered cluster
        / sqrt(max(n - 1, d)), 0 for clusters of fewer than 2 points (differentiable in x),
        counts (Tensor[P, k] int64): cluster sizes.
    """
    check_float_tensor("x", x, 3)
    assert_has_ops()
    return torch.ops.sdd.cluster_singular_sum(x, labels, k)


def effective_rank(y):
    """Normalised effective rank exp(H(p)) / min(R, d), p = sigma / sum(sigma) + 1e-12.

    Args:
        y (Tensor[Q, R, d]): Q matrices (not centered).

    Returns:
        Tensor[Q], differentiable in y.
    """
    check_float_tensor("y", y, 3)
    assert_has_ops()
    return torch.ops.sdd.effective_rank(y)


def inter_cluster_distance(x, centroids, labels):
    """Mean distance of each point to the nearest centroid other than its own.

    Args:
        x (Tensor[P, M, d]): points.
        centroids (Tensor[P, k, d]): centroids.
        labels (Tensor[P, M] int64): own centroid of every point.

    Returns:
        Tensor[P], differentiable in x and centroids (the nearest-other choice is constant).
    """
    check_float_tensor("x", x, 3)
    check_float_tensor("centroids", centroids, 3)
    assert_has_ops()
    return torch.ops.sdd.inter_cluster_distance(x, centroids, labels)


# ---- fake kernels ------------------------------------------------------------------------


def _register() -> None:
    lib = "sdd::"

    @torch.library.register_fake(lib + "kmeans")
    def _(x, k, iters, tol, n_init, seeding, seed):
        P, M, d = x.shape
        dt = _compute_dtype(x)
        return (x.new_empty((P, k, d), dtype=dt), x.new_empty((P, M), dtype=torch.int64),
                x.new_empty((P,), dtype=dt))

    @torch.library.register_fake(lib + "cluster_singular_sum")
    def _(x, labels, k):
        P = x.shape[0]
        return x.new_empty((P, k), dtype=_compute_dtype(x)), x.new_empty((P, k), dtype=torch.int64)

    @torch.library.register_fake(lib + "cluster_singular_sum_backward")
    def _(grad_values, x, labels, k):
        return torch.empty_like(x)

    @torch.library.register_fake(lib + "effective_rank")
    def _(y):
        return y.new_empty((y.shape[0],), dtype=_compute_dtype(y))

    @torch.library.register_fake(lib + "effective_rank_backward")
    def _(grad, y):
        return torch.empty_like(y)

    @torch.library.register_fake(lib + "inter_cluster_distance")
    def _(x, centroids, labels):
        dt = torch.promote_types(_compute_dtype(x), _compute_dtype(centroids))
        return x.new_empty((x.shape[0],), dtype=dt)

    @torch.library.register_fake(lib + "inter_cluster_distance_backward")
    def _(grad, x, centroids, labels):
        return torch.empty_like(x), torch.empty_like(centroids)

    @torch.library.register_fake(lib + "dse_forward")
    def _(feats, local_k, global_k, group, normalize, iters, tol, n_init, seeding, seed, local_labels,
          global_labels):
        B, N, d = feats.shape
        G = -(-B // group)
        dt = _compute_dtype(feats)
        long = dict(dtype=torch.int64)
        return (feats.new_empty((5,), dtype=dt), feats.new_empty((B, N), **long),
                feats.new_empty((G, group * N), **long), feats.new_empty((G, global_k, d), dtype=dt),
                feats.new_empty((G, group * N), **long), feats.new_empty((B, N), **long))

    @torch.library.register_fake(lib + "dse_backward")
    def _(grad, values, feats, local_labels, global_labels, centroids, other, perm, local_k, global_k, group,
          normalize):
        return torch.empty_like(feats)


if has_ops():
    _register()
