"""The CUDA kernels against the CPU ones, and what only a GPU can show: no host sync, CUDA-graph
capture, determinism, memory. Every test is marked `cuda` (conftest skips them without a GPU);
`make gpu-check` runs them. Sizes are small but for two runs at the headline size, so the file
takes seconds on an H100/H200.

Tolerances (SPEC): values within 1e-4 relative in fp32 on the same labels, gradients within 1e-3
norm-relative; labels equal on clearly clustered data (the CUDA k-means++ draws from the same
Philox counters as the CPU kernel, so it picks the same seeds in the same order).
"""

import pytest
import torch
from helpers import clustered_feats, norm_rel_err, rel_err, same_partition

import sdd_fast

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
OPTS = dict(local_k=3, global_k=12, group=4)  # 4 images of 3 classes each: 12 clear clusters per group
WEIGHTS = (1.0, -0.3, 0.7, 0.2, -1.1)  # a gradient through all five outputs, none cancelling another


def clear_case(images=8, patches=48, dim=64, seed=0):
    """Clustered features [images, patches, dim] (fp32, CPU), their local labels [B, N] and their
    global labels [G, group * N] for OPTS' group (-1 past a smaller last group, as dse_forward)."""
    feats, labels = clustered_feats(images=images, classes=3, patches=patches, dim=dim, seed=seed)
    local = labels - 3 * torch.arange(images).unsqueeze(1)
    group = OPTS["group"]
    groups = -(-images // group)
    glob = torch.full((groups, group * patches), -1, dtype=torch.int64)
    for g in range(groups):
        members = labels[g * group:(g + 1) * group].reshape(-1)
        glob[g, :members.numel()] = members - 3 * group * g
    return feats, local, glob


def both(fn, *tensors):
    """fn on the CPU tensors and on their CUDA copies; returns (cpu_result, cuda_result)."""
    return fn(*tensors), fn(*(t.to(CUDA) for t in tensors))


def grad_of(fn, x, *rest, weights=None):
    """d/dx of sum(weights * fn(x, *rest)[0 or all]) for x and rest on x's device."""
    x = x.detach().clone().requires_grad_()
    out = fn(x, *(r.to(x.device) for r in rest))
    out = out[0] if isinstance(out, tuple) else out
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)) if weights is None else weights
    (out * w.to(out)).sum().backward()
    return x.grad


# ---- every op and backward, CUDA vs CPU ----------------------------------------------------------
@pytest.mark.parametrize("level", ["local", "global"])
def test_kmeans_same_labels_as_cpu(level):
    feats, _, _ = clear_case()
    x = torch.nn.functional.normalize(feats, dim=-1)
    x, k = (x, 3) if level == "local" else (x.reshape(2, -1, x.shape[-1]), 12)
    (c_cpu, l_cpu, i_cpu), (c_gpu, l_gpu, i_gpu) = both(lambda t: sdd_fast.kmeans(t, k), x)
    assert torch.equal(l_gpu.cpu(), l_cpu), "CUDA k-means found other labels than the CPU kernel"
    assert norm_rel_err(c_gpu, c_cpu) <= 1e-5
    # 1e-3: the inertia sums small squared distances, |x|^2 - 2 x.c + |c|^2 cancels in fp32
    assert rel_err(i_gpu, i_cpu) <= 1e-3
    _, l_multi, _ = sdd_fast.kmeans(x.to(CUDA), k, n_init=3)
    # n_init=3 keeps one of near-equal runs, so ids may differ; the partition of each problem may not
    assert all(same_partition(found, truth) for found, truth in zip(l_multi.cpu(), l_cpu))


@pytest.mark.parametrize("dim", [16, 96])  # clusters of 12-20 points: covariance (d x d) / Gram (n x n) smaller
def test_cluster_singular_sum_and_backward(dim):
    feats, local, glob = clear_case(dim=dim)
    for x, labels, k in ((feats, local, 3), (feats[:4].reshape(1, -1, dim), glob[:1], 12)):
        (v_cpu, n_cpu), (v_gpu, n_gpu) = both(lambda t, lab: sdd_fast.cluster_singular_sum(t, lab, k), x, labels)
        assert torch.equal(n_gpu.cpu(), n_cpu)
        assert v_gpu.dtype == torch.float32 and rel_err(v_gpu, v_cpu) <= 1e-4
        def fn(t, lab):
            return sdd_fast.cluster_singular_sum(t, lab, k)
        assert norm_rel_err(grad_of(fn, x.to(CUDA), labels), grad_of(fn, x, labels)) <= 1e-3


def test_effective_rank_and_backward():
    feats, _, _ = clear_case()
    y = torch.nn.functional.normalize(feats, dim=-1).transpose(0, 1).contiguous()  # [48, 8, 64], as M_dim
    r_cpu, r_gpu = both(sdd_fast.effective_rank, y)
    assert rel_err(r_gpu, r_cpu) <= 1e-4
    assert norm_rel_err(grad_of(sdd_fast.effective_rank, y.to(CUDA)), grad_of(sdd_fast.effective_rank, y)) <= 1e-3


def test_inter_cluster_distance_and_backward():
    feats, _, glob = clear_case()
    x = torch.nn.functional.normalize(feats, dim=-1).reshape(2, -1, feats.shape[-1])
    centroids = torch.stack([torch.stack([x[g][glob[g] == c].mean(0) for c in range(12)]) for g in range(2)])
    d_cpu, d_gpu = both(sdd_fast.inter_cluster_distance, x, centroids, glob)
    assert rel_err(d_gpu, d_cpu) <= 1e-4
    w = torch.tensor([0.7, -1.3])
    grads = []
    for dev in ("cpu", CUDA):
        xs, cs = x.detach().to(dev).requires_grad_(), centroids.detach().to(dev).requires_grad_()
        (sdd_fast.inter_cluster_distance(xs, cs, glob.to(dev)) * w.to(dev)).sum().backward()
        grads.append((xs.grad, cs.grad))
    assert norm_rel_err(grads[1][0], grads[0][0]) <= 1e-3 and norm_rel_err(grads[1][1], grads[0][1]) <= 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_continuous_ap_loss_and_backward(dtype):
    """64 anchors x 600 candidates (three tiles): the CUDA kernel (pairwise) against the CPU's
    sorted algorithm, values and gradients; no host sync in the wrapper."""
    g = torch.Generator().manual_seed(3)
    s = (torch.rand(64, 600, generator=g) * 2 - 1).to(dtype)
    t = (torch.rand(64, 600, generator=g) * 10).round().to(dtype) / 10
    scale = torch.where(torch.rand(64, 600, generator=g) < 0.3, 0.1, 1.0).to(dtype)
    options = dict(theta=0.3, lam=1.5, tau=0.2, reduction="none")
    l_cpu, l_gpu = both(lambda s_, t_, c_: sdd_fast.continuous_ap_loss(s_, t_, c_, **options), s, t, scale)
    assert rel_err(l_gpu, l_cpu) <= (1e-4 if dtype == torch.float32 else 1e-10)
    grads = [grad_of(lambda x, t_, c_: sdd_fast.continuous_ap_loss(x, t_, c_, **options), s.to(dev), t, scale)
             for dev in ("cpu", CUDA)]
    assert norm_rel_err(grads[1], grads[0]) <= (1e-3 if dtype == torch.float32 else 1e-9)


def dse_values_and_grad(feats, local=None, glob=None, **options):
    """(values [5], grad of sum(WEIGHTS * values)) of sdd_fast.dse on feats' device."""
    x = feats.detach().clone().requires_grad_()
    values = torch.stack(list(sdd_fast.dse(x, local_labels=local, global_labels=glob, **{**OPTS, **options})))
    (values * torch.tensor(WEIGHTS, device=x.device)).sum().backward()
    return values.detach(), x.grad


@pytest.mark.parametrize("images", [8, 10])  # 10: a smaller last group (2 images), padded global labels
def test_dse_forward_backward_on_given_labels(images):
    feats, local, glob = clear_case(images=images)
    v_cpu, g_cpu = dse_values_and_grad(feats, local, glob)
    v_gpu, g_gpu = dse_values_and_grad(feats.to(CUDA), local.to(CUDA), glob.to(CUDA))
    assert v_gpu.device.type == "cuda" and v_gpu.dtype == torch.float32
    assert rel_err(v_gpu, v_cpu) <= 1e-4
    assert norm_rel_err(g_gpu, g_cpu) <= 1e-3


# The second: two groups of the headline's global problem (8 images x 196 patches, 384 channels,
# 24 clusters), big enough for the kernels that split a problem's points over several blocks.
@pytest.mark.parametrize("B,N,d,global_k,group", [(8, 48, 64, 12, 4), (16, 196, 384, 24, 8)],
                         ids=["small", "headline-groups"])
def test_dse_forward_with_its_own_kmeans_matches_cpu(B, N, d, global_k, group):
    """The forward's constants (labels, centroids, nearest-other choices, permutation) and values."""
    feats, _, _ = clear_case(images=B, patches=N, dim=d)
    args = (OPTS["local_k"], global_k, group, True, 20, 1e-4, 1, "greedy", 0, None, None)
    cpu, gpu = both(lambda t: torch.ops.sdd.dse_forward(t, *args), feats)
    values, local, glob, centroids, other, perm = (t.cpu() for t in gpu)
    assert torch.equal(perm, cpu[5]), "the M_dim permutation differs (Philox keys)"
    assert torch.equal(local, cpu[1]) and torch.equal(glob, cpu[2]), "CUDA k-means found other labels"
    assert norm_rel_err(centroids, cpu[3]) <= 1e-5
    assert float((other == cpu[4]).double().mean()) >= 0.99  # near-ties may flip; the values below hold anyway
    assert rel_err(values, cpu[0]) <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_fp32(dtype):
    feats, local, glob = clear_case()
    rounded = feats.to(dtype)
    v_gpu, g_gpu = dse_values_and_grad(rounded.to(CUDA), local.to(CUDA), glob.to(CUDA))
    v_cpu, g_cpu = dse_values_and_grad(rounded.float(), local, glob)  # the same rounded input, in fp32
    assert v_gpu.dtype == torch.float32 and g_gpu.dtype == dtype
    assert rel_err(v_gpu, v_cpu) <= 1e-4
    assert bool(torch.isfinite(g_gpu).all()) and norm_rel_err(g_gpu, g_cpu) <= 1e-2  # grad rounded to `dtype`


# ---- what only a GPU shows -------------------------------------------------------------------------
def test_deterministic():
    feats = clear_case(images=16, patches=196, dim=384)[0].to(CUDA)
    first, second = dse_values_and_grad(feats), dse_values_and_grad(feats)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_no_host_sync_in_forward_and_backward():
    """validate=False (the default) must not sync: set_sync_debug_mode("error") raises on any
    synchronising call (.item(), a device-to-host copy, a data-dependent shape)."""
    feats = clear_case()[0].to(CUDA)
    dse_values_and_grad(feats)  # warm-up: library handles and allocator blocks outside the check
    torch.cuda.synchronize()
    x = feats.clone().requires_grad_()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = sdd_fast.dse(x, **OPTS)
        (result.dse + result.inter).backward()
        raw = torch.ops.sdd.dse(x.detach(), OPTS["local_k"], OPTS["global_k"], OPTS["group"])
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert bool(torch.isfinite(raw).all()) and bool(torch.isfinite(x.grad).all())


def test_cuda_graph_replay_equals_eager():
    feats = clear_case()[0].to(CUDA)
    static = feats.clone()

    def forward():
        return torch.ops.sdd.dse(static, OPTS["local_k"], OPTS["global_k"], OPTS["group"])

    side = torch.cuda.Stream()  # warm-up on a side stream, as torch.cuda.graphs' docs ask
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = forward()
    for scale in (1.0, 0.5):  # other data in the captured input: the replay recomputes
        other = feats * scale + 0.01 * torch.randn_like(feats)
        static.copy_(other)
        graph.replay()
        eager = forward()
        torch.testing.assert_close(captured, eager, rtol=1e-6, atol=1e-7)
    assert not torch.equal(captured, torch.ops.sdd.dse(feats, OPTS["local_k"], OPTS["global_k"], OPTS["group"]))


def test_thousand_calls_do_not_grow_memory():
    feats = clear_case()[0].to(CUDA)
    dse_values_and_grad(feats)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(1000):
        dse_values_and_grad(feats)
    torch.cuda.synchronize()
    grown = torch.cuda.memory_allocated() - before
    assert grown <= 64 * 1024, f"memory_allocated grew by {grown} bytes over 1000 calls"


def test_peak_memory_at_headline_size(record_property):
    """Reported, not held tight: printed (pytest -rP shows it) and recorded in junit properties."""
    from sdd_fast.core.synthetic import structured_feats

    feats = structured_feats(images=64, patches=196, dim=384).to(CUDA)
    dse_values_and_grad(feats[:8])
    peaks = {}
    for name, backward in (("forward", False), ("forward+backward", True)):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        if backward:
            dse_values_and_grad(feats, global_k=24, group=8)  # the defaults, as the forward below
        else:
            with torch.no_grad():
                sdd_fast.dse(feats)
        torch.cuda.synchronize()
        peaks[name] = torch.cuda.max_memory_allocated() - before
        record_property(f"peak_bytes_{name}", peaks[name])
    print("peak extra CUDA memory at B=64, N=196, d=384 (input 18.4 MiB): "
          + ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in peaks.items()))
    assert max(peaks.values()) < 2 * 2**30  # a leak-sized blunder only


# ---- bad input under validate=True: an exception, never a device assert ----------------------------
@pytest.mark.parametrize("which,value", [("local", 3), ("local", -1), ("global", 12), ("global", -2)])
def test_bad_labels_with_validate_raise_value_error(which, value):
    feats, local, glob = clear_case()
    local, glob = local.to(CUDA), glob.to(CUDA)
    (local if which == "local" else glob)[1, 5] = value
    with pytest.raises(ValueError, match=f"{which}_labels must hold values in"):
        sdd_fast.dse(feats.to(CUDA), local_labels=local, global_labels=glob, validate=True, **OPTS)
    torch.cuda.synchronize()  # the device is still healthy: no kernel ran on the bad labels
    with pytest.raises(ValueError, match="features' device"):
        sdd_fast.dse(feats.to(CUDA), local_labels=local.cpu(), **OPTS)
    with pytest.raises(ValueError, match="NaN or Inf"):
        sdd_fast.dse(torch.full_like(feats, float("nan"), device=CUDA), validate=True, **OPTS)


def test_raw_ops_with_out_of_range_constants_give_nan_not_a_device_assert():
    """Without validate (no sync) nothing range-checks labels on a GPU: the kernels leave a bad
    label's problem out, clamp the permutation, and the affected values / the gradient are NaN."""
    feats, local, _ = clear_case()
    f = feats.to(CUDA)
    args = (OPTS["local_k"], OPTS["global_k"], OPTS["group"], True, 20, 1e-4, 1, "greedy", 0)
    bad_local = local.to(CUDA)
    bad_local[1, 5] = 7
    values = torch.ops.sdd.dse_forward(f, *args, bad_local, None)[0]
    assert torch.isnan(values[[0, 2]]).all() and torch.isfinite(values[[1, 3, 4]]).all()
    good = torch.ops.sdd.dse_forward(f, *args, None, None)
    for index, bad in ((1, 7), (2, -5), (4, 99), (5, 999)):  # local, global labels, other, perm
        broken = list(good)
        broken[index] = broken[index].clone()
        broken[index][0, 0] = bad
        grad = torch.ops.sdd.dse_backward(torch.ones(5, device=CUDA), *broken, *args[:4])
        torch.cuda.synchronize()
        assert torch.isnan(grad).all(), index
