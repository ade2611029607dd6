"""Inside torch.autocast the ops keep their own precision rules: autocast is turned off for them
(csrc/autocast.cpp), so mixed-precision training loops can call DSE. Before that, the matrix
products inside the CPU kernels were autocast to bf16 and the kernels failed."""

import pytest
import torch
from helpers import clustered_feats

import sdd_fast

OPTIONS = dict(global_k=6, group=2)


def autocast_dtype(device):
    return torch.bfloat16 if device.type == "cpu" else torch.float16


def test_dse_under_autocast_equals_outside_with_gradient(device):
    feats, _ = clustered_feats(images=4, classes=3, patches=24, dim=16)
    feats = feats.to(device)
    expected = torch.stack(list(sdd_fast.dse(feats, **OPTIONS)))
    x = feats.clone().requires_grad_()
    with torch.autocast(device.type, dtype=autocast_dtype(device)):
        got = torch.stack(list(sdd_fast.dse(x, **OPTIONS)))
        got.sum().backward()
    assert got.dtype == torch.float32
    assert torch.equal(got.detach(), expected)
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("op", ["kmeans", "cluster_singular_sum", "effective_rank", "inter_cluster_distance"])
def test_building_blocks_under_autocast(device, op):
    x = torch.randn(2, 30, 8, device=device)
    centroids, labels, _ = sdd_fast.kmeans(x, 4)
    calls = {
        "kmeans": lambda: sdd_fast.kmeans(x, 4)[2],
        "cluster_singular_sum": lambda: sdd_fast.cluster_singular_sum(x, labels, 4)[0],
        "effective_rank": lambda: sdd_fast.effective_rank(x),
        "inter_cluster_distance": lambda: sdd_fast.inter_cluster_distance(x, centroids, labels),
    }
    expected = calls[op]()
    with torch.autocast(device.type, dtype=autocast_dtype(device)):
        got = calls[op]()
    assert got.dtype == expected.dtype and torch.equal(got, expected)
