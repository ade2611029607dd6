"""M_inter's nearest other centroid is the exact one (float64 distances, ties: the lowest index):
the inter_cluster_distance op finds it from float32 products and their error bound, dse's k-means
from the distance bounds its Lloyd loop keeps. Both must pick the same centroid, bit for bit, and
agree with a float64 reference."""

import contextlib

import pytest
import torch
from helpers import clustered_feats, plain_lloyd

from sdd_fast import _C
from sdd_fast.core.synthetic import structured_feats


def _near_ties(problems: int, dim: int, seed: int):
    """Problems of one point x (label 0, its centroid x itself) and two centroids at almost the
    same distance: x + u and x + (u with its entries permuted, scaled by 1 + ~3e-8), in random
    order. Their float64 distances differ by ~1e-8 relative; float32 products cannot tell them apart."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(problems, dim, generator=g)
    u = torch.randn(problems, dim, generator=g)
    permuted = torch.stack([row[torch.randperm(dim, generator=g)] for row in u])
    permuted = permuted * (1.0 + 3e-8 * torch.randn(problems, 1, generator=g))
    swap = torch.rand(problems, 1, generator=g) < 0.5
    first, second = torch.where(swap, x + permuted, x + u), torch.where(swap, x + u, x + permuted)
    centroids = torch.stack([x, first, second], dim=1)  # [P, 3, d]
    return x.unsqueeze(1), centroids, torch.zeros(problems, 1, dtype=torch.long)


def _reference_sq(x, centroids):
    """Squared float64 distances [P, M, k]."""
    return ((x.double().unsqueeze(2) - centroids.double().unsqueeze(1)) ** 2).sum(-1)


def test_op_picks_the_exact_nearest_at_near_ties():
    x, centroids, labels = _near_ties(256, 384, seed=0)
    sq = _reference_sq(x, centroids)[:, 0, 1:]  # [P, 2]: the two candidates
    decided = (sq[:, 0] - sq[:, 1]).abs() > 1e-11 * sq.min(1).values  # beyond any summation order's rounding
    assert int(decided.sum()) > 200
    expected = 1 + sq.argmin(1)
    _, grad_c = torch.ops.sdd.inter_cluster_distance_backward(torch.ones(256, dtype=torch.float64), x, centroids,
                                                              labels)
    chosen = grad_c.abs().sum(-1).argmax(1)  # the only centroid row with a gradient
    assert torch.equal(chosen[decided], expected[decided])
    mean = torch.ops.sdd.inter_cluster_distance(x, centroids, labels)
    torch.testing.assert_close(mean.double(), sq.min(1).values.sqrt(), rtol=1e-6, atol=0)


def test_op_gives_nan_for_a_problem_with_a_non_finite_point():
    x, centroids, labels = _near_ties(3, 16, seed=1)
    clean = torch.ops.sdd.inter_cluster_distance(x, centroids, labels)
    x[1, 0, 5] = float("nan")
    means = torch.ops.sdd.inter_cluster_distance(x, centroids, labels)
    assert bool(means[1].isnan()) and torch.equal(means[[0, 2]], clean[[0, 2]])


def _dse_forward(feats, global_k, n_init, seeding, labels=(None, None), group=4):
    return torch.ops.sdd.dse_forward(feats, 3, global_k, group, True, 20, 1e-4, n_init, seeding, 0, *labels)


def _cases():
    for dtype in (torch.float32, torch.float64):
        clustered, _ = clustered_feats(images=8, classes=3, patches=48, dim=32, noise=0.3, seed=1, dtype=dtype)
        noisy = torch.randn(8, 48, 32, dtype=dtype, generator=torch.Generator().manual_seed(2))
        yield dtype, "clustered", clustered
        yield dtype, "random", noisy


@pytest.mark.parametrize("plain", [False, True])
@pytest.mark.parametrize(("global_k", "n_init", "seeding"), [(12, 1, "greedy"), (5, 2, "d2"), (1, 1, "greedy")])
def test_dse_k_means_finds_the_ops_nearest_others(global_k, n_init, seeding, plain):
    for dtype, name, feats in _cases():
        with plain_lloyd() if plain else contextlib.nullcontext():
            values, local, glob, centroids, other, _ = _dse_forward(feats, global_k, n_init, seeding)
        # The same labels given: the op's path (float32 products, float64 rechecks) finds the others.
        given_values, *_, given_other, _ = _dse_forward(feats, global_k, n_init, seeding, (local, glob))
        assert torch.equal(other, given_other), (dtype, name)
        assert torch.equal(values[1], given_values[1]), (dtype, name)
        # Against float64 distances: the nearest centroid other than the own one.
        x = torch.nn.functional.normalize(feats.double(), dim=-1).reshape(glob.shape[0], -1, feats.shape[-1])
        sq = _reference_sq(x, centroids).scatter(2, glob.unsqueeze(2), float("inf"))
        if global_k == 1:
            assert bool((other == -1).all())
            continue
        picked = sq.gather(2, other.unsqueeze(2)).squeeze(2)
        assert bool((picked <= sq.min(2).values * (1 + 1e-12)).all()), (dtype, name)


def test_dse_k_means_takes_few_distances_for_the_nearest_others():
    """Classes split into several clusters (24 clusters of ~10 classes a group): a point's nearest
    other centroids are its class's other clusters, the bounds rule out the rest."""
    feats = structured_feats(images=16, patches=196, dim=384)
    _C.work_counters(True)
    _dse_forward(feats, 24, 1, "greedy", group=8)
    taken = _C.work_counters(True)["other_distances"]
    points = feats.shape[0] * feats.shape[1]
    assert points <= taken < points * (24 - 1) / 2  # one at least per point; most ruled out
