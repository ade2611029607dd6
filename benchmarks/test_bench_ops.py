"""Each building-block op at the headline size (B=64, N=196, d=384: 64 images of 196 patches
for the local level, 8 groups of 1568 patches for the global one), with its vectorized
plain-PyTorch counterpart from torch_baseline.py for comparison."""

import pytest
import torch
import torch_baseline
from bench_utils import HEADLINE, measure

import sdd_fast

B, N, D = HEADLINE
GROUP, LOCAL_K, GLOBAL_K = sdd_fast.DEFAULTS.group, sdd_fast.DEFAULTS.local_k, sdd_fast.DEFAULTS.global_k

# name -> (differentiable, problem shape shown in RESULTS.md)
OPS = {
    "kmeans local": (False, f"[{B}, {N}, {D}], k={LOCAL_K}"),
    "kmeans global": (False, f"[{B // GROUP}, {GROUP * N}, {D}], k={GLOBAL_K}"),
    "cluster_singular_sum local": (True, f"[{B}, {N}, {D}], k={LOCAL_K}"),
    "cluster_singular_sum global": (True, f"[{B // GROUP}, {GROUP * N}, {D}], k={GLOBAL_K}"),
    "effective_rank": (True, f"[{N}, {B}, {D}]"),
    "inter_cluster_distance": (True, f"[{B // GROUP}, {GROUP * N}, {D}], k={GLOBAL_K}"),
}
CASES = [(op, impl, p) for op, (grad, _) in OPS.items() for impl in ("sdd_fast", "torch-batched")
         for p in (("forward", "forward+backward") if grad else ("forward",))]


_INPUTS = {}


def inputs_for(feats):
    """Per device: normalised local / global problems, their labels and centroids (cached)."""
    key = str(feats.device)
    if key not in _INPUTS:
        x = feats / feats.norm(dim=-1, keepdim=True)
        xg = x.reshape(B // GROUP, GROUP * N, D)
        _, local_labels, _ = sdd_fast.kmeans(x, LOCAL_K)
        centroids, global_labels, _ = sdd_fast.kmeans(xg, GLOBAL_K)
        _INPUTS[key] = dict(x=x, xg=xg, local_labels=local_labels, global_labels=global_labels,
                            centroids=centroids, y=x.transpose(0, 1).contiguous())
    return _INPUTS[key]


def _call(op, impl, t):
    """(function of the differentiable input, that input) for one op."""
    ours = impl == "sdd_fast"
    if op.startswith("kmeans"):
        k, x = (LOCAL_K, t["x"]) if op.endswith("local") else (GLOBAL_K, t["xg"])
        fn = sdd_fast.kmeans if ours else torch_baseline.kmeans
        return (lambda x: fn(x, k)[1]), x
    if op.startswith("cluster_singular_sum"):
        labels, k, x = ((t["local_labels"], LOCAL_K, t["x"]) if op.endswith("local")
                        else (t["global_labels"], GLOBAL_K, t["xg"]))
        fn = sdd_fast.cluster_singular_sum if ours else torch_baseline.cluster_singular_sums
        return (lambda x: fn(x, labels, k)[0]), x
    if op == "effective_rank":
        return (sdd_fast.effective_rank if ours else torch_baseline.effective_rank), t["y"]
    if op == "inter_cluster_distance":
        fn = sdd_fast.inter_cluster_distance if ours else torch_baseline.nearest_other_distance
        return (lambda x: fn(x, t["centroids"], t["global_labels"])), t["xg"]
    raise ValueError(op)


@pytest.mark.parametrize("op,impl,pass_", CASES, ids=[f"{o.replace(' ', '-')}-{i}-{p}" for o, i, p in CASES])
@pytest.mark.benchmark(group="building-block ops")
def test_op(benchmark, feats_for, device, op, impl, pass_):
    fn, x = _call(op, impl, inputs_for(feats_for(B, N, D, device)))
    if pass_ == "forward":
        def run():
            with torch.no_grad():
                return fn(x)
    else:
        x = x.detach().clone().requires_grad_()

        def run():
            x.grad = None
            fn(x).sum().backward()
    rounds_kind = "op" if impl == "sdd_fast" else "torch-batched"
    measure(benchmark, run, device, rounds_kind, kind="op", op=op, impl=impl, shape=OPS[op][1],
            **{"pass": pass_}, B=B, N=N, d=D)

