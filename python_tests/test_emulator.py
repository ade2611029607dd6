"""The CUDA kernels' bodies, run on the CPU block emulator (torch.ops.sdd_emu), against the CPU
kernels (torch.ops.sdd on CPU tensors) and the float64 reference (sdd_fast.reference).

Same grid, block and shared-memory sizes as the GPU launches, so these tests run the real
indexing, barriers and shared-memory layout of csrc/kernels/ without a GPU. Sizes are small:
the emulator runs one OS thread per CUDA thread. `make emu-test` runs this file;
`make emu-sanitize` runs the same kernels under ThreadSanitizer and AddressSanitizer.
"""

import emulated_ops
import pytest
import torch
from helpers import clustered_feats, norm_rel_err, rel_err, same_partition

from sdd_fast import reference

pytestmark = pytest.mark.emulator

DSE_ARGS = dict(local_k=3, global_k=4, group=2, normalize=True, iters=20, tol=1e-4, n_init=1, seeding="greedy", seed=0)


@pytest.fixture(scope="module")
def emu():
    return emulated_ops.ops()


def dse_forward(ops, feats, local=None, glob=None, **options):
    opts = dict(DSE_ARGS, **options)
    return ops.dse_forward(feats, *opts.values(), local, glob)


def dse_backward(ops, grad, out, feats, **options):
    opts = dict(DSE_ARGS, **options)
    values, local, glob, centroids, other, perm = out
    return ops.dse_backward(grad, values, feats, local, glob, centroids, other, perm, opts["local_k"],
                            opts["global_k"], opts["group"], opts["normalize"])


# ---- kmeans ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeding,n_init", [("greedy", 1), ("d2", 3), ("d", 2)])
def test_kmeans_same_partition_as_cpu_on_clear_data(emu, seeding, n_init):
    feats, truth = clustered_feats(images=4, classes=3, patches=20, dim=24)
    x = feats.reshape(2, 40, 24)  # two problems of 6 true clusters each
    args = (6, 20, 1e-4, n_init, seeding, 3)
    centroids, labels, inertia = emu.kmeans(x, *args)
    cpu_centroids, cpu_labels, cpu_inertia = torch.ops.sdd.kmeans(x, *args)
    for p in range(2):
        assert same_partition(labels[p], cpu_labels[p])
    if seeding == "greedy":
        for p in range(2):
            assert same_partition(labels[p], truth.reshape(2, 40)[p])
    assert rel_err(inertia, cpu_inertia) <= 1e-4
    order = [torch.argsort(labels[p]) for p in range(2)]  # centroids: same set (label ids may differ)
    for p in range(2):
        mapped = torch.zeros_like(centroids[p])
        mapped[cpu_labels[p][order[p]]] = centroids[p][labels[p][order[p]]]
        assert rel_err(mapped, cpu_centroids[p]) <= 1e-4


def test_kmeans_inertia_against_reference_on_hard_data(emu):
    """Overlapping blobs: no exact partition to recover; the inertia must be as good as the
    float64 reference's k-means (same algorithm, another RNG) on average over seeds."""
    x = torch.randn(1, 64, 8, dtype=torch.float64)
    ours = [float(emu.kmeans(x, 5, 20, 1e-4, 1, "greedy", s)[2]) for s in range(3)]
    ref = [float(reference.kmeans(x[0], 5, seed=s)[2]) for s in range(3)]
    assert sum(ours) / 3 <= 1.05 * sum(ref) / 3


def test_kmeans_labels_and_inertia_are_consistent(emu):
    x = torch.randn(2, 30, 5)
    centroids, labels, inertia = emu.kmeans(x, 4, 20, 1e-4, 1, "greedy", 0)
    nearest = torch.cdist(x.double(), centroids.double()).argmin(-1)
    assert torch.equal(labels, nearest)
    expected = ((x.double() - torch.gather(centroids.double(), 1, labels.unsqueeze(-1).expand(-1, -1, 5))) ** 2)
    assert rel_err(inertia, expected.sum((1, 2))) <= 1e-5


# ---- cluster_singular_sum ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 24, 6), (2, 12, 20)])  # covariance and Gram sides
def test_cluster_singular_sum_matches_cpu_and_reference(emu, shape):
    P, M, d = shape
    x = torch.randn(shape, dtype=torch.float64)
    labels = torch.randint(0, 3, (P, M))
    labels[:, 0] = 3  # a one-point cluster: value 0
    labels[1, :] = labels[1, :].clamp_max(1)  # an empty cluster (2) in problem 1
    labels[1, 0] = 3
    values, counts = emu.cluster_singular_sum(x.float(), labels, 4)
    cpu_values, cpu_counts = torch.ops.sdd.cluster_singular_sum(x.float(), labels, 4)
    expected = torch.zeros(P, 4, dtype=torch.float64)
    for p in range(P):
        for c in range(4):
            members = x[p][labels[p] == c]
            if len(members) >= 2:
                expected[p, c] = reference.centered_singular_sum(members)
    assert torch.equal(counts, cpu_counts)
    assert rel_err(values, expected) <= 1e-4
    assert rel_err(values, cpu_values) <= 1e-4
    grad = torch.randn(P, 4, dtype=torch.float64)
    g = emu.cluster_singular_sum_backward(grad, x, labels, 4)
    assert norm_rel_err(g, torch.ops.sdd.cluster_singular_sum_backward(grad, x, labels, 4)) <= 1e-3
    xr = x.clone().requires_grad_(True)
    total = sum(grad[p, c] * reference.centered_singular_sum(xr[p][labels[p] == c])
                for p in range(P) for c in range(4) if int((labels[p] == c).sum()) >= 2)
    total.backward()
    assert norm_rel_err(g, xr.grad) <= 1e-3


# ---- effective_rank ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 5, 12), (2, 9, 4), (2, 1, 6)])
def test_effective_rank_matches_reference_with_gradient(emu, shape):
    y = torch.randn(shape, dtype=torch.float64)
    ranks = emu.effective_rank(y)
    expected = torch.stack([reference.effective_rank(m) for m in y])
    assert rel_err(ranks, expected) <= 1e-4
    assert rel_err(emu.effective_rank(y.float()), torch.ops.sdd.effective_rank(y.float())) <= 1e-4
    grad = torch.randn(shape[0], dtype=torch.float64)
    g = emu.effective_rank_backward(grad, y)
    yr = y.clone().requires_grad_(True)
    (torch.stack([reference.effective_rank(m) for m in yr]) * grad).sum().backward()
    assert float((g - yr.grad).norm()) <= 1e-3 * float(yr.grad.norm()) + 1e-12  # R = 1: erank is 1, gradient 0


# ---- inter_cluster_distance ----------------------------------------------------------------------
def test_inter_cluster_distance_matches_cpu_with_gradient(emu):
    x = torch.randn(2, 20, 7, dtype=torch.float64)
    centroids = torch.randn(2, 10, 7, dtype=torch.float64)  # more than one distance chunk
    labels = torch.randint(0, 10, (2, 20))
    mean = emu.inter_cluster_distance(x, centroids, labels)
    expected = torch.stack([reference.nearest_other_distance(x[p], centroids[p], labels[p]) for p in range(2)])
    assert rel_err(mean, expected) <= 1e-6
    grad = torch.randn(2, dtype=torch.float64)
    gx, gc = emu.inter_cluster_distance_backward(grad, x, centroids, labels)
    cgx, cgc = torch.ops.sdd.inter_cluster_distance_backward(grad, x, centroids, labels)
    assert norm_rel_err(gx, cgx) <= 1e-6 and norm_rel_err(gc, cgc) <= 1e-6


# ---- dse -----------------------------------------------------------------------------------------
def test_dse_own_kmeans_same_labels_and_values_as_cpu_on_clear_data(emu):
    feats, _ = clustered_feats(images=4, classes=3, patches=16, dim=20)
    out = dse_forward(emu, feats)
    cpu = dse_forward(torch.ops.sdd, feats)
    for b in range(4):
        assert same_partition(out[1][b], cpu[1][b])
    for g in range(2):
        assert same_partition(out[2][g], cpu[2][g])
    assert torch.equal(out[5], cpu[5])  # the permutation
    assert rel_err(out[0], cpu[0]) <= 1e-4


@pytest.mark.parametrize("case", ["plain", "ragged", "duplicates", "fp64", "unnormalized"])
def test_dse_given_labels_values_and_gradient_match_cpu(emu, case):
    B, N, d = (5, 12, 10) if case == "ragged" else (4, 12, 10)  # ragged: the last group holds 1 image
    dtype = torch.float64 if case == "fp64" else torch.float32
    feats = torch.randn(B, N, d, dtype=dtype)
    if case == "duplicates":
        feats[:, 1::2] = feats[:, ::2]
    local = torch.randint(0, 3, (B, N))
    glob = torch.randint(0, 4, (-(-B // 2), 2 * N))
    glob[0, :] = glob[0, :].clamp_max(2)  # an empty global cluster
    options = dict(normalize=case != "unnormalized")
    out = dse_forward(emu, feats, local, glob, **options)
    cpu = dse_forward(torch.ops.sdd, feats, local, glob, **options)
    assert out[0].dtype == dtype
    assert rel_err(out[0], cpu[0]) <= 1e-4
    assert torch.equal(out[4], cpu[4])  # nearest other centroids (-1 past a smaller last group)
    grad = torch.randn(5, dtype=dtype)
    g = dse_backward(emu, grad, out, feats, **options)
    cg = dse_backward(torch.ops.sdd, grad, cpu, feats, **options)
    assert norm_rel_err(g, cg) <= 1e-3


def test_dse_against_float64_reference(emu):
    feats = torch.randn(4, 12, 10, dtype=torch.float64)
    local = torch.randint(0, 3, (4, 12))
    glob = torch.randint(0, 4, (2, 24))
    values = dse_forward(emu, feats, local, glob)[0]
    expected = reference.dse(feats, **DSE_ARGS, local_labels=local, global_labels=glob)
    assert rel_err(values, expected) <= 1e-4


def test_dse_collapsed_features(emu):
    feats = torch.ones(4, 12, 10) + 1e-9 * torch.randn(4, 12, 10)
    out = dse_forward(emu, feats)
    assert torch.isfinite(out[0]).all()
    assert out[0][1:4].abs().max() == 0
    assert abs(float(out[0][4]) - 1 / 4) <= 1e-5
    g = dse_backward(emu, torch.ones(5), out, feats)
    assert torch.isfinite(g).all()


def test_dse_non_finite_input_gives_nan(emu):
    feats = torch.randn(4, 12, 10)
    feats[1, 3, 2] = float("nan")
    out = dse_forward(emu, feats)
    assert torch.isnan(out[0]).all()
    assert torch.isnan(dse_backward(emu, torch.ones(5), out, feats)).all()


def test_matrices_past_the_shared_memory_cap(emu):
    """Gram sides over 80 (kSharedMatrixCap) are diagonalised in the global workspace."""
    x = torch.randn(1, 84, 90, dtype=torch.float64)
    labels = torch.zeros(1, 84, dtype=torch.int64)
    values, _ = emu.cluster_singular_sum(x, labels, 1)
    assert rel_err(values[0, 0], reference.centered_singular_sum(x[0])) <= 1e-6
    y = torch.randn(1, 83, 84, dtype=torch.float64)
    assert rel_err(emu.effective_rank(y), reference.effective_rank(y[0]).unsqueeze(0)) <= 1e-6
    grad = torch.ones(1, dtype=torch.float64)
    g = emu.effective_rank_backward(grad, y)
    yr = y.clone().requires_grad_(True)
    reference.effective_rank(yr[0]).backward()
    assert norm_rel_err(g, yr.grad) <= 1e-6


def test_dse_backward_rejects_out_of_range_constants(emu):
    """The forward's constants are what the backward indexes with: out of range on CPU tensors,
    a ValueError naming them (the CPU backward read out of bounds before). On a GPU, where a
    range check needs a sync, the kernels leave bad labels out, clamp the permutation and return
    a NaN gradient instead (test_cuda.py)."""
    feats = torch.randn(4, 12, 10)
    out = list(dse_forward(torch.ops.sdd, feats))
    for index, bad, name in ((1, 7, "local_labels"), (4, 9, "other"), (5, 12, "perm")):
        broken = list(out)
        broken[index] = broken[index].clone()
        broken[index][0, 0] = bad
        for ops in (emu, torch.ops.sdd):
            with pytest.raises(ValueError, match=name):
                dse_backward(ops, torch.ones(5), broken, feats)


def test_non_finite_matrix_gives_nan_for_it_only(emu):
    y = torch.randn(3, 5, 8)
    y[1, 2, 3] = float("nan")
    ranks = emu.effective_rank(y)
    assert torch.isnan(ranks[1]) and torch.equal(torch.isnan(ranks), torch.isnan(torch.ops.sdd.effective_rank(y)))
    assert rel_err(ranks[[0, 2]], torch.ops.sdd.effective_rank(y)[[0, 2]]) <= 1e-4


# ---- continuous_ap_loss ----------------------------------------------------------------------------
@pytest.mark.parametrize("candidates", [7, 300])  # one partial tile; two tiles of 256, the second partial
@pytest.mark.parametrize("hard_step", [False, True])
def test_continuous_ap_loss_matches_reference_with_gradient(emu, candidates, hard_step):
    s = torch.rand(4, candidates, dtype=torch.float64) * 2 - 1
    t = torch.round(torch.rand(4, candidates, dtype=torch.float64) * 10) / 10  # ties
    t[3] *= 0.2  # no weight: loss 0, gradient 0
    scale = torch.where(torch.rand(4, candidates) < 0.3, 0.1, 1.0).double()
    options = dict(theta=0.3, lam=1.5, tau=0.2, hard_step=hard_step)
    loss = emu.continuous_ap_loss(s, t, scale, *options.values(), "pairwise")
    sr = s.clone().requires_grad_(True)
    expected = reference.continuous_ap_loss(sr, t, scale, **options)
    assert rel_err(loss, expected.detach()) <= 1e-10 and loss[3] == 0
    grad = torch.randn(4, dtype=torch.float64)
    g = emu.continuous_ap_loss_backward(grad, s, t, scale, *options.values(), "sorted")  # device: pairwise always
    if hard_step:
        assert torch.count_nonzero(g) == 0
    else:
        (expected * grad).sum().backward()
        assert norm_rel_err(g, sr.grad) <= 1e-9 and g[3].abs().sum() == 0


def test_continuous_ap_loss_non_finite_anchor_is_nan(emu):
    s, t = torch.rand(2, 9, dtype=torch.float64), torch.rand(2, 9, dtype=torch.float64)
    t[1, 4] = float("inf")
    loss = emu.continuous_ap_loss(s, t, None, 0.3, 1.0, 0.1, False, "auto")
    g = emu.continuous_ap_loss_backward(torch.ones(2, dtype=torch.float64), s, t, None, 0.3, 1.0, 0.1, False, "auto")
    assert torch.isfinite(loss[0]) and torch.isnan(loss[1])
    assert torch.isfinite(g[0]).all() and torch.isnan(g[1]).all()
