"""sdd.kmeans: finds clear partitions, is deterministic per seed, respects every option, and on hard
data (no partition to recover) reaches the reference's inertia at a Lloyd fixed point."""

import functools
import math

import pytest
import torch
from helpers import clustered_feats, same_partition

import sdd_fast
from sdd_fast import reference


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


# ---- hard data: no partition to recover, only an inertia to reach ------------------------------------
HARD_SIZES = (150, 100, 70, 50, 35, 25, 15, 10)  # unequal clusters, the largest first
HARD_K = len(HARD_SIZES)


def hard_data(seed: int, layout: str, d: int = 64):
    """[460, d] float64 points of HARD_K anisotropic Gaussian clusters (each its own random
    rotation, axis scales 1.5 .. 0.2) and their true labels; the points are ordered by
    cluster, largest first, so the first HARD_K points all lie in one cluster.

    layout "overlapping": 5 far-apart groups, 3 of which hold two overlapping clusters (about 2 %
    of the points are nearer another cluster's centre than their own); "separated": every
    cluster on its own (Lloyd from a poor start is caught in a local minimum more often).
    """
    g = torch.Generator().manual_seed(seed)
    if layout == "overlapping":
        groups = torch.randn(5, d, generator=g, dtype=torch.float64) * 2.0 / 2**0.5
        owner = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
        centres = groups[owner] + torch.randn(HARD_K, d, generator=g, dtype=torch.float64) * 0.35 / 2**0.5
    else:
        centres = torch.randn(HARD_K, d, generator=g, dtype=torch.float64) * 2.0 / 2**0.5
    scales = torch.logspace(math.log10(1.5), math.log10(0.2), d, dtype=torch.float64)
    points = []
    for c, n in enumerate(HARD_SIZES):
        rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        points.append(centres[c] + (torch.randn(n, d, generator=g, dtype=torch.float64) * scales) @ rotation.T)
    return torch.cat(points), torch.repeat_interleave(torch.arange(HARD_K), torch.tensor(HARD_SIZES))


def sq_dist(x, centroids):
    """[M, k] squared distances, float64, exact (no cdist matmul shortcut)."""
    return ((x.unsqueeze(1) - centroids.unsqueeze(0)) ** 2).sum(-1)


def lloyd(x, centroids, iters: int = 50):
    """Plain Lloyd iterations written out here (an empty cluster keeps its centroid)."""
    for _ in range(iters):
        labels = sq_dist(x, centroids).argmin(1)
        centroids = torch.stack([x[labels == c].mean(0) if bool((labels == c).any()) else centroids[c]
                                 for c in range(len(centroids))])
    return centroids


def inertia_of(x, centroids) -> float:
    return float(sq_dist(x, centroids).min(1).values.sum())


HARD_DATASETS, HARD_SEEDS = (100, 101, 102, 103), range(24)


@functools.lru_cache(maxsize=None)
def hard_baselines(layout: str) -> dict:
    """Per dataset: the data, the oracle inertia (Lloyd from the true clusters' means), the
    float64 reference k-means' inertia for every seed, and Lloyd's from the first HARD_K points."""
    out = {}
    for data_seed in HARD_DATASETS:
        x, truth = hard_data(data_seed, layout)
        oracle = inertia_of(x, lloyd(x, torch.stack([x[truth == c].mean(0) for c in range(HARD_K)])))
        ref = [float(reference.kmeans(x, HARD_K, seed=s)[2]) for s in HARD_SEEDS]
        first_k = inertia_of(x, lloyd(x, x[:HARD_K].clone()))
        out[data_seed] = (x, oracle, ref, first_k)
    return out


# Largest mean inertia / oracle allowed per layout. Measured means (oracle = 1): compiled 0.995 /
# 1.105, float64 reference 0.994 / 1.106; Lloyd from the first k points 1.36 / 1.44, uniform
# seeding 1.06 / 1.26, the reference with "d2" seeding (one candidate) 1.01 / 1.24, with "d"
# seeding 1.04 / 1.29, with 1 Lloyd iteration instead of 20 1.005 / 1.16.
HARD_LIMITS = {"overlapping": 1.03, "separated": 1.15}


@pytest.mark.parametrize("layout", ["overlapping", "separated"])
def test_inertia_on_hard_data_as_good_as_the_reference_and_near_the_oracle(device, layout, one_thread):
    """Anisotropic, unequal, ordered clusters in d = 64, 4 datasets x 24 seeds, default options:
    the compiled k-means' mean inertia is within 3 % of (or below) the float64 reference's
    (same options, another RNG) and within HARD_LIMITS of the oracle's. A seeding that picked
    the first k points, drew uniformly or kept fewer candidates, or a Lloyd loop that stopped
    early, would miss one of them (numbers above)."""
    ours, ref, first_k = [], [], []
    for data_seed, (x, oracle, ref_inertia, first) in hard_baselines(layout).items():
        xs = x.float().unsqueeze(0).to(device)
        ours += [float(sdd_fast.kmeans(xs, HARD_K, seed=s)[2]) / oracle for s in HARD_SEEDS]
        ref += [r / oracle for r in ref_inertia]
        first_k.append(first / oracle)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    # The data must defeat a seeding that takes the first k points (they are all in one cluster).
    assert mean(first_k) > 1.3, first_k
    assert mean(ours) <= 1.03 * mean(ref), (mean(ours), mean(ref))
    assert mean(ours) <= HARD_LIMITS[layout], (mean(ours), mean(ref))


@pytest.mark.parametrize("layout", ["overlapping", "separated"])
def test_result_on_hard_data_is_a_lloyd_fixed_point(device, layout, one_thread):
    """Lloyd has converged: every centroid is the mean of the points labelled with it (an
    update that is not the mean, or iterations cut short, leave centroids off their means)."""
    converged = total = 0
    for data_seed, (x, _, _, _) in hard_baselines(layout).items():
        for seed in range(8):
            centroids, labels, _ = sdd_fast.kmeans(x.unsqueeze(0).to(device), HARD_K, seed=seed)
            centroids, labels = centroids[0].cpu(), labels[0].cpu()
            assert sorted(labels.unique().tolist()) == list(range(HARD_K))  # no empty cluster
            means = torch.stack([x[labels == c].mean(0) for c in range(HARD_K)])
            converged += float((means - centroids).norm() / centroids.norm()) <= 1e-9
            total += 1
    # 20 iterations (the default) reach the fixed point on this data; allow one run in ten not to.
    assert converged >= 0.9 * total, f"{converged}/{total} runs converged"
