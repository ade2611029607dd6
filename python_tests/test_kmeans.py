"""sdd.kmeans: finds clear partitions, is deterministic per seed, respects every option."""

import pytest
import torch
from helpers import clustered_feats, same_partition

import sdd_fast


def test_shapes_and_dtypes(device):
    x = torch.randn(5, 40, 7, device=device)
    centroids, labels, inertia = sdd_fast.kmeans(x, 4)
    assert centroids.shape == (5, 4, 7) and centroids.dtype == torch.float32
    assert labels.shape == (5, 40) and labels.dtype == torch.int64
    assert inertia.shape == (5,)
    assert bool(((labels >= 0) & (labels < 4)).all())


def test_labels_are_nearest_centroid_and_inertia_matches(device):
    x = torch.randn(3, 60, 5, dtype=torch.float64, device=device)
    centroids, labels, inertia = sdd_fast.kmeans(x, 6)
    dist = torch.cdist(x, centroids)
    assert torch.equal(labels, dist.argmin(dim=2))
    expected = ((x - torch.gather(centroids, 1, labels.unsqueeze(-1).expand_as(x))) ** 2).sum(dim=(1, 2))
    torch.testing.assert_close(inertia, expected)


@pytest.mark.parametrize("seeding", ["greedy", "d2", "d"])
def test_same_seed_same_result(device, seeding):
    x = torch.randn(4, 50, 8, device=device)
    a = sdd_fast.kmeans(x, 5, seeding=seeding, seed=3)
    b = sdd_fast.kmeans(x, 5, seeding=seeding, seed=3)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_global_rng_untouched(device):
    x, feats = torch.randn(2, 30, 4, device=device), torch.randn(8, 12, 5, device=device)
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if device.type == "cuda" else None
    sdd_fast.kmeans(x, 3, seed=11)
    sdd_fast.dse(feats, local_k=2, global_k=4, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    if cuda_state is not None:
        assert torch.equal(cuda_state, torch.cuda.get_rng_state())


def test_greedy_finds_true_partition_in_95_percent_of_seeds(device):
    """SPEC: 8 images x 3 classes, global k = 24; greedy seeding must find it (>= 95%)."""
    found = 0
    seeds = range(40)
    for seed in seeds:
        feats, truth = clustered_feats(seed=seed)
        x = feats.reshape(1, -1, feats.shape[-1]).to(device)
        _, labels, _ = sdd_fast.kmeans(x, 24, seed=seed)
        found += same_partition(labels.cpu(), truth)
    assert found >= 0.95 * len(seeds), f"true partition found for {found}/{len(seeds)} seeds"


def test_n_init_keeps_least_inertia(device):
    x = torch.randn(6, 80, 6, device=device)
    single = [sdd_fast.kmeans(x, 8, seeding="d", seed=0, n_init=1)[2]]
    multi = sdd_fast.kmeans(x, 8, seeding="d", seed=0, n_init=4)[2]
    # The first of the four runs is the n_init=1 run, so more inits never do worse.
    assert bool((multi <= single[0] + 1e-4).all())


def test_iters_zero_returns_the_seeds(device):
    x = torch.randn(2, 20, 3, dtype=torch.float64, device=device)
    centroids, labels, _ = sdd_fast.kmeans(x, 4, iters=0)
    for p in range(2):  # every seed is one of the points
        assert bool((torch.cdist(centroids[p], x[p]).min(dim=1).values < 1e-12).all())


def test_non_finite_input_does_not_hang(device):
    x = torch.randn(2, 30, 4, device=device)
    x[0, 3, 1] = float("nan")
    centroids, labels, inertia = sdd_fast.kmeans(x, 3)
    assert labels.shape == (2, 30)
    assert torch.isfinite(inertia[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(k=0), "k must be"), (dict(k=3, iters=-1), "iters"), (dict(k=3, tol=-1.0), "tol"),
     (dict(k=3, n_init=0), "n_init"), (dict(k=3, seeding="kmeans||"), "seeding")],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sdd_fast.kmeans(torch.randn(1, 10, 2), **kwargs)


def test_bad_x():
    with pytest.raises(TypeError, match="x must be a floating-point"):
        sdd_fast.kmeans(torch.ones(1, 10, 2, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="x must be 3-D"):
        sdd_fast.kmeans(torch.randn(10, 2), 2)
    with pytest.raises(ValueError, match="k = 11 needs M >= k"):
        torch.ops.sdd.kmeans(torch.randn(1, 10, 2), 11, 20, 1e-4, 1, "greedy", 0)
