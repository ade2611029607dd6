"""sdd_fast.dse against the float64 reference, on given labels and with its own k-means."""

import pytest
import torch
from helpers import call_dse, clustered_feats, dse_labels, norm_rel_err, rel_err, same_partition

import sdd_fast
from sdd_fast import reference

OPTS = dict(local_k=3, global_k=6, group=4)


def random_case(B=10, N=24, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, d, generator=g, dtype=torch.float64)


def test_result_type_and_values(device):
    feats = random_case().float().to(device)
    result = sdd_fast.dse(feats, **OPTS)
    assert isinstance(result, sdd_fast.DSEResult)
    assert all(v.dim() == 0 and v.dtype == torch.float32 for v in result)
    d = result.to_dict()
    assert set(d) == {"dse", "inter", "intra_image", "intra_batch", "dim"}
    assert d["dse"] == pytest.approx(d["inter"] + d["dim"] - (d["intra_image"] + d["intra_batch"]) / 2, rel=1e-5)
    raw = torch.ops.sdd.dse(feats, 3, 6, 4)
    assert raw.shape == (5,) and torch.equal(raw, torch.stack(list(result)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_reference_on_same_labels(device, dtype, normalize):
    feats = random_case()
    local, glob, _ = dse_labels(feats, normalize=normalize, **OPTS)
    expected = reference.dse(feats, normalize=normalize, local_labels=local, global_labels=glob, **OPTS)
    out = call_dse(feats.to(dtype).to(device), normalize=normalize, local_labels=local.to(device),
                   global_labels=glob.to(device), **OPTS)
    assert out.dtype == dtype
    assert rel_err(out, expected) <= (1e-4 if dtype == torch.float32 else 1e-9)


def reference_kmeans_labels(feats, local_k, global_k, group, seed=11):
    """Labels from an independent source: the float64 reference's own k-means (its
    torch.Generator seeding, not the compiled op's Philox draws) on the normalised patches,
    per image and per group; global labels padded with -1 past a smaller last group."""
    x = reference.normalize_patches(feats.double())
    B, N, d = x.shape
    local = torch.stack([reference.kmeans(x[b], local_k, seed=seed + b)[1] for b in range(B)])
    starts = range(0, B, group)
    glob = torch.full((len(starts), group * N), -1, dtype=torch.int64)
    for g, start in enumerate(starts):
        points = x[start:start + group].reshape(-1, d)
        glob[g, :len(points)] = reference.kmeans(points, global_k, seed=seed + 1000 + g)[1]
    return local, glob


def hand_made_labels(B, N, local_k, global_k, group):
    """Arbitrary labels with the awkward cases: a one-patch local cluster (image 0), an empty
    local cluster (image 1), a one-patch global cluster and a global id used nowhere."""
    patch = torch.arange(N)
    local = torch.stack([(patch + b) % local_k for b in range(B)])
    local[0] = torch.where(patch == 5, 0, 1 + patch % (local_k - 1))  # cluster 0: patch 5 only
    local[1] = patch % (local_k - 1)  # cluster local_k - 1: empty
    G = -(-B // group)
    glob = torch.full((G, group * N), -1, dtype=torch.int64)
    for g in range(G):
        count = min(group, B - g * group) * N
        glob[g, :count] = (torch.arange(count) * 5 + g) % (global_k - 2)
    glob[0, 3] = global_k - 2  # a one-patch global cluster; id global_k - 1 is used nowhere
    return local, glob


@pytest.mark.parametrize("source", ["reference_kmeans", "hand_made"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_labels_from_an_independent_source_match_the_reference(device, source, dtype):
    """Given labels the compiled op did not produce (the reference's k-means, or hand-made
    ones with singleton and empty clusters), the compiled op and the float64 reference agree
    on every component and on the gradient, with B = 10 (a 2-image last group, padded)."""
    feats = random_case(B=10, N=24, d=12, seed=7)
    if source == "reference_kmeans":
        local, glob = reference_kmeans_labels(feats, **OPTS)
        own_local, own_glob, _ = dse_labels(feats, **OPTS)
        # Otherwise this would repeat the comparisons above: these labels are not the op's.
        assert not all(same_partition(local[b], own_local[b]) for b in range(10))
        assert not all(same_partition(glob[g][glob[g] >= 0], own_glob[g][own_glob[g] >= 0]) for g in range(3))
    else:
        local, glob = hand_made_labels(10, 24, **OPTS)
        assert int((local[0] == 0).sum()) == 1 and int((local[1] == OPTS["local_k"] - 1).sum()) == 0
        assert int((glob[0] == OPTS["global_k"] - 2).sum()) == 1 and not bool((glob == OPTS["global_k"] - 1).any())
    weights = torch.tensor([1.0, -0.3, 0.7, 0.2, -1.1], dtype=torch.float64)
    ref_in = feats.clone().requires_grad_()
    expected = reference.dse(ref_in, local_labels=local, global_labels=glob, **OPTS)
    (expected * weights).sum().backward()
    ours = feats.to(dtype).to(device).requires_grad_()
    out = call_dse(ours, local_labels=local.to(device), global_labels=glob.to(device), **OPTS)
    (out * weights.to(dtype).to(device)).sum().backward()
    expected = expected.detach()
    assert torch.isfinite(expected).all() and float(expected[1]) > 0  # inter: a real value, not a 0 fallback
    assert rel_err(out.detach(), expected) <= (1e-4 if dtype == torch.float32 else 1e-9)
    assert norm_rel_err(ours.grad, ref_in.grad) <= (1e-3 if dtype == torch.float32 else 1e-8)


def test_smaller_last_group_and_given_labels_with_padding(device):
    feats = random_case(B=7, N=20)
    local, glob, _ = dse_labels(feats, **OPTS)
    assert bool((glob[-1, 3 * 20:] == -1).all())  # padding past the 3-image last group
    expected = reference.dse(feats, local_labels=local, global_labels=glob, **OPTS)
    out = call_dse(feats.float().to(device), local_labels=local.to(device), global_labels=glob.to(device), **OPTS)
    assert rel_err(out, expected) <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_matches_reference_autograd(device, dtype):
    feats = random_case(B=9, N=20, d=10, seed=3)
    local, glob, _ = dse_labels(feats, **OPTS)
    weights = torch.tensor([1.0, -0.3, 0.7, 0.2, -1.1], dtype=torch.float64)
    ref_in = feats.clone().requires_grad_()
    (reference.dse(ref_in, local_labels=local, global_labels=glob, **OPTS) * weights).sum().backward()
    ours = feats.to(dtype).to(device).requires_grad_()
    (call_dse(ours, local_labels=local.to(device), global_labels=glob.to(device), **OPTS)
     * weights.to(dtype).to(device)).sum().backward()
    assert ours.grad.dtype == dtype
    assert norm_rel_err(ours.grad, ref_in.grad) <= 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_matches_reference_at_large_clusters(dtype):
    """d = 300 and clusters of 100-340 points: Gram-side eigen-decompositions of every kind the CPU
    backward uses (the lane solver's full pairs, its one-group chunks of ~256 rows, LAPACK past 256
    rows and for small chunks), against autograd through the float64 reference."""
    from sdd_fast.core.synthetic import structured_feats

    opts = dict(local_k=3, global_k=8, group=16)
    feats = structured_feats(48, 96, 300).double()
    local, glob, _ = dse_labels(feats, **opts)
    sizes = torch.cat([torch.bincount(row[row >= 0]) for row in glob])
    assert int((sizes > 200).sum()) >= 8 and int((sizes > 256).sum()) >= 1
    weights = torch.tensor([1.0, -0.3, 0.7, 0.2, -1.1], dtype=torch.float64)
    ref_in = feats.clone().requires_grad_()
    (reference.dse(ref_in, local_labels=local, global_labels=glob, **opts) * weights).sum().backward()
    ours = feats.to(dtype).requires_grad_()
    (call_dse(ours, local_labels=local, global_labels=glob, **opts) * weights.to(dtype)).sum().backward()
    assert norm_rel_err(ours.grad, ref_in.grad) <= (1e-4 if dtype == torch.float32 else 1e-10)


def test_gradcheck_with_given_labels():
    """Finite differences of intra_image, intra_batch and dim. (inter and dse hold the
    centroids constant by definition, which finite differences cannot; the reference
    comparison above covers them.)"""
    feats = random_case(B=4, N=8, d=5, seed=4).requires_grad_()
    local, glob, _ = dse_labels(feats.detach(), local_k=2, global_k=3, group=2)
    fn = lambda f: torch.ops.sdd.dse(f, 2, 3, 2, True, 20, 1e-4, 1, "greedy", 0, local, glob)[2:]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (feats,))


def test_own_kmeans_finds_true_partitions():
    """With clear structure, dse's own k-means labels are the true partitions (>= 95% of seeds)."""
    good = 0
    seeds = range(20)
    for seed in seeds:
        feats, truth = clustered_feats(seed=seed)
        local, glob, _ = dse_labels(feats, seed=seed)
        good += same_partition(glob[0], truth.reshape(-1)) and all(
            same_partition(local[b], truth[b]) for b in range(len(truth)))
    assert good >= 0.95 * len(seeds), f"{good}/{len(seeds)}"


def test_own_kmeans_agrees_with_the_reference_backend():
    """Both find the true partitions of clear data, so their components agree: float64 to
    1e-9 against `reference.dse`, and float32 to 1e-4 through `backend="reference"` (which must
    be that reference: the same numbers as calling it directly)."""
    feats, _ = clustered_feats(seed=5)
    ours = call_dse(feats.double(), seed=5)
    ref = reference.dse(feats.double(), seed=5)
    assert rel_err(ours, ref) <= 1e-9
    via_backend = call_dse(feats, seed=5, backend="reference")
    assert torch.equal(via_backend, reference.dse(feats, seed=5))
    assert rel_err(call_dse(feats, seed=5), via_backend) <= 1e-4


def test_local_kmeans_is_the_kmeans_op():
    """dse's per-image k-means is sdd.kmeans on the normalised images (same seed, same draws)."""
    feats = random_case(B=6, N=30, d=8)
    local, _, _ = dse_labels(feats, **OPTS)
    _, labels, _ = sdd_fast.kmeans(reference.normalize_patches(feats), 3)
    assert torch.equal(local, labels)


def test_same_seed_same_result_other_seed_other_permutation(device):
    feats = random_case().float().to(device)
    a, b = call_dse(feats, seed=1, **OPTS), call_dse(feats, seed=1, **OPTS)
    assert torch.equal(a, b)
    _, _, perm1 = dse_labels(feats, seed=1, **OPTS)
    _, _, perm2 = dse_labels(feats, seed=2, **OPTS)
    assert not torch.equal(perm1, perm2)
    assert torch.equal(perm1.cpu(), reference.patch_permutation(10, 24, 1))


def test_thread_count_changes_nothing():
    """The CPU kernels split images, groups and eigenproblems over ATen's threads: 1 and 4
    threads give the same partitions, values and gradients (each problem keeps its own RNG
    stream and runs on one thread)."""
    feats = random_case(B=16, N=24, d=12, seed=3).float()
    threads = torch.get_num_threads()
    results = {}
    try:
        for count in (1, 4):
            torch.set_num_threads(count)
            x = feats.clone().requires_grad_()
            out = call_dse(x, **OPTS)
            out[0].backward()
            results[count] = (out.detach(), x.grad, dse_labels(feats, **OPTS))
    finally:
        torch.set_num_threads(threads)
    (out1, grad1, labels1), (out4, grad4, labels4) = results[1], results[4]
    assert all(torch.equal(a, b) for a, b in zip(labels1, labels4))
    assert torch.allclose(out1, out4, rtol=1e-6, atol=1e-7)
    assert torch.allclose(grad1, grad4, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_fp32(device, dtype):
    feats = random_case()
    local, glob, _ = dse_labels(feats, **OPTS)
    x = feats.to(dtype).to(device).requires_grad_()
    out = call_dse(x, local_labels=local.to(device), global_labels=glob.to(device), **OPTS)
    expected = reference.dse(feats.to(dtype).double(), local_labels=local, global_labels=glob, **OPTS)
    assert out.dtype == torch.float32 and rel_err(out, expected) <= 1e-4
    out[0].backward()
    assert x.grad.dtype == dtype and bool(torch.isfinite(x.grad).all())


def test_any_strides(device):
    base = random_case(B=10, N=24, d=24).float().to(device)
    strided = base.transpose(1, 2).contiguous().transpose(1, 2)[:, :, ::2]
    assert not strided.is_contiguous()
    assert torch.equal(call_dse(strided, **OPTS), call_dse(strided.contiguous(), **OPTS))
