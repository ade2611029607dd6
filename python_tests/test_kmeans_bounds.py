"""The CPU k-means prunes distances with Hamerly and Elkan bounds and ranks near ties in fp64, and its
greedy seeding skips the point-candidate products the triangle inequality rules out: it must give the
labels, centroids and inertia of plain Lloyd after the full seeding loop (every distance every
iteration, every product), bit for bit, and its labels must be the exact nearest centroids."""

import pytest
import torch
from helpers import clustered_feats, plain_lloyd

import sdd_fast
from sdd_fast import _C


def _both(x, k, **options):
    _C.work_counters(True)
    bounded = sdd_fast.kmeans(x, k, **options)
    bounded_work = dict(_C.work_counters(True))
    with plain_lloyd():
        plain = sdd_fast.kmeans(x, k, **options)
    plain_work = dict(_C.work_counters(True))
    return bounded, plain, bounded_work, plain_work


def _random(problems, points, dim, dtype, seed):
    return torch.randn(problems, points, dim, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _clustered(dtype, seed):
    feats, _ = clustered_feats(images=4, classes=6, patches=96, dim=48, noise=0.05, seed=seed, dtype=dtype)
    return feats.reshape(2, -1, 48)  # 2 problems of 192 points around 12 centres each


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("data", ["random", "clustered", "duplicates", "uniform"])
@pytest.mark.parametrize("k", [2, 7, 24])
def test_same_labels_centroids_and_inertia_as_plain_lloyd(data, k, dtype):
    for seed in range(3):
        if data == "random":
            x = _random(3, 150, 12, dtype, seed)
        elif data == "clustered":
            x = _clustered(dtype, seed)
        elif data == "uniform":  # no clusters, low dimension: the centroids keep moving for many iterations
            x = torch.rand(2, 300, 2, dtype=dtype, generator=torch.Generator().manual_seed(seed))
        else:  # exact ties everywhere: every point appears 3 times, on a coarse grid
            grid = torch.randint(-2, 3, (2, 40, 3), generator=torch.Generator().manual_seed(seed))
            x = grid.to(dtype).repeat(1, 3, 1)
        bounded, plain, bounded_work, plain_work = _both(x, k, iters=50, tol=0.0, seed=seed)
        for a, b in zip(bounded, plain):
            assert torch.equal(a, b)
        assert bounded_work["lloyd_iterations"] == plain_work["lloyd_iterations"]
        assert plain_work["distances_computed"] == plain_work["distances_full"]
        assert bounded_work["distances_computed"] <= bounded_work["distances_full"]
        assert plain_work["seeding_computed"] == plain_work["seeding_full"]
        assert bounded_work["seeding_computed"] <= bounded_work["seeding_full"]


def test_bounds_prune_most_distances_on_clustered_data():
    x = _clustered(torch.float32, 0)
    _, _, bounded_work, plain_work = _both(x, 12, iters=50, tol=0.0)
    assert bounded_work["lloyd_iterations"] >= 2 * x.shape[0]
    # every point is evaluated in the first assignment; after that, only points near a boundary
    first_pass = x.shape[0] * x.shape[1] * 12
    assert bounded_work["distances_computed"] - first_pass < 0.5 * (plain_work["distances_full"] - first_pass)


def test_first_assignment_from_the_seeding_at_near_ties():
    """iters=0: the labels are the first assignment, to the seeds, which the bounded kernel takes
    from the seeding's own float32 distances and bounds. Midpoints between a few data points are
    near-equidistant from two of them, within the distances' rounding: the labels must still be
    plain Lloyd's, the exact nearest seed (lowest index on ties)."""
    g = torch.Generator().manual_seed(11)
    near_ties = 0
    for _ in range(12):
        base = torch.randn(3, 12, 24, generator=g)
        pairs = torch.randint(0, 12, (3, 600, 2), generator=g)
        ends = [torch.gather(base, 1, pairs[..., e : e + 1].expand(-1, -1, 24)) for e in (0, 1)]
        x = torch.cat([base, 0.5 * (ends[0] + ends[1])], dim=1)
        for seed in range(10):
            bounded, plain, _, _ = _both(x, 12, iters=0, tol=0.0, seed=seed)
            for a, b in zip(bounded, plain):
                assert torch.equal(a, b)
            exact = torch.cdist(x.double(), bounded[0].double()).square()
            nearest = exact.min(dim=2, keepdim=True).values
            assert torch.equal(bounded[1], (exact == nearest).int().argmax(dim=2))
            two = exact.topk(2, dim=2, largest=False).values
            near_ties += int((two[..., 1] - two[..., 0] < 1e-6 * two[..., 0]).sum())
    assert near_ties >= 50  # the data does make near ties


def test_per_centroid_bounds_prune_where_clusters_overlap():
    """Structured features at the metric's global k: many centroids at similar distances, where one
    lower bound per point (Hamerly) keeps about half the distances and per-centroid bounds (Elkan)
    only a few percent."""
    from sdd_fast.core.synthetic import structured_feats

    x = structured_feats(16, 196, 64)
    x = (x / x.norm(dim=-1, keepdim=True)).reshape(2, -1, 64)
    bounded, plain, bounded_work, plain_work = _both(x, 24, iters=20, tol=1e-4)
    for a, b in zip(bounded, plain):
        assert torch.equal(a, b)
    first_pass = x.shape[0] * x.shape[1] * 24
    assert bounded_work["distances_computed"] - first_pass < 0.1 * (plain_work["distances_full"] - first_pass)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("k", "dim", "points"), [(16, 64, 300), (3, 37, 301), (5, 19, 299), (9, 40, 302)])
def test_labels_are_the_exact_nearest_centroid(dtype, k, dim, points):
    # near ties: points halfway between two centroids up to a few fp32 ulps; k and dim cover every
    # row block and column tail of the float32 dot kernel, points every last partial block
    x = _random(2, points, dim, dtype, 5)
    centroids, labels, _ = sdd_fast.kmeans(x, k, iters=30, tol=0.0)
    exact = torch.cdist(x.double(), centroids.double()).square()
    best = exact.min(dim=2, keepdim=True).values
    expected = (exact == best).int().argmax(dim=2)  # lowest index among the exact minima
    assert torch.equal(labels, expected)


def test_dse_identical_with_plain_lloyd():
    from sdd_fast.core.synthetic import structured_feats

    x = structured_feats(16, 49, 32)
    bounded = torch.ops.sdd.dse_forward(x, 3, 24, 8, True, 20, 1e-4, 1, "greedy", 0, None, None)
    with plain_lloyd():
        plain = torch.ops.sdd.dse_forward(x, 3, 24, 8, True, 20, 1e-4, 1, "greedy", 0, None, None)
    for a, b in zip(bounded, plain):
        assert torch.equal(a, b)


@pytest.mark.parametrize("scale", [1e-20, 1e-12, 1e15])
def test_same_labels_as_plain_lloyd_at_extreme_scales(scale):
    # float32 Hamerly / Elkan bounds come from float32 distances with an error bound; squares that
    # underflow (1e-20: ~1e-42 per column) must still leave them upper bounds
    for seed in range(3):
        x = _clustered(torch.float32, seed) * scale
        bounded, plain, _, _ = _both(x, 12, iters=50, tol=0.0, seed=seed)
        for a, b in zip(bounded, plain):
            assert torch.equal(a, b)
