"""Headline size (B=64, N=196, d=384): sdd_fast.dse forward and forward+backward against
the plain-PyTorch reference in the same run (see the group's ratios)."""

import pytest
import torch

import sdd_fast
from sdd_fast.synthetic import structured_feats

B, N, D = 64, 196, 384


@pytest.fixture(scope="module")
def feats():
    return structured_feats(images=B, patches=N, dim=D)


@pytest.mark.benchmark(group="dse-forward")
def test_dse_forward(benchmark, feats):
    benchmark(lambda: sdd_fast.dse(feats))


@pytest.mark.benchmark(group="dse-forward-backward")
def test_dse_forward_backward(benchmark, feats):
    x = feats.clone().requires_grad_()

    def step():
        x.grad = None
        sdd_fast.dse(x).dse.backward()

    benchmark(step)


@pytest.mark.benchmark(group="dse-forward")
def test_reference_forward(benchmark, feats):
    """Baseline: the plain-PyTorch reference (SVDs, Python loops over images and clusters)."""
    benchmark.pedantic(lambda: sdd_fast.dse(feats, backend="reference"), rounds=1, iterations=1)
