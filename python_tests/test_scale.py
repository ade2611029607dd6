"""Every dse component is invariant to the features' scale, so finite fp32 features at any
scale must give the scale-1 answer (and a gradient scaled by 1 / scale). The features are
rescaled by an exact power of two inside the ops (csrc/inputs/features.h); before that, fp32
squared norms overflowed from ~1e19 (dse 3.84 instead of 0.13, then "collapsed")."""

import pytest
import torch
from helpers import clustered_feats, norm_rel_err, rel_err

import sdd_fast

OPTIONS = dict(global_k=6, group=2)


def values_and_grad(feats, normalize):
    x = feats.detach().clone().requires_grad_()
    values = torch.stack(list(sdd_fast.dse(x, normalize=normalize, **OPTIONS)))
    (values * torch.tensor([1.0, -0.5, 0.3, 0.7, -1.2], device=x.device)).sum().backward()
    return values.detach(), x.grad


# With normalize=True, patches whose norm is under SPEC's eps (1e-12) are divided by the eps, not
# their norm: there the metric itself differs, so those scales are tested without normalisation.
CASES = [(True, 1e19), (True, 1e30), (True, 1e-10), (False, 1e19), (False, 1e30), (False, 1e-13), (False, 1e-20)]


@pytest.mark.parametrize("normalize,scale", CASES)
def test_fp32_features_at_extreme_scales_give_the_scale_one_answer(device, normalize, scale):
    feats, _ = clustered_feats(images=4, classes=3, patches=24, dim=16, noise=0.05)
    expected, expected_grad = values_and_grad(feats.to(device), normalize)
    scaled = (feats.double() * scale).float().to(device)
    assert torch.isfinite(scaled).all() and scaled.abs().min() > 0
    values, grad = values_and_grad(scaled, normalize)
    assert rel_err(values, expected) <= 1e-4
    assert norm_rel_err(grad.double() * scale, expected_grad) <= 1e-3
