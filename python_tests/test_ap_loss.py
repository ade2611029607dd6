"""sdd::continuous_ap_loss: against the float64 reference (values, gradients), 1 - AP for binary
targets with the hard step, candidate permutations, the pairwise and sorted algorithms, opcheck,
and argument errors."""

import pytest
import torch

import sdd_fast
from sdd_fast import reference

pytestmark = pytest.mark.skipif(not sdd_fast.has_ops(), reason="needs the compiled library")

OPTIONS = dict(theta=0.3, lam=1.5, tau=0.2)


def lists(anchors, candidates, *, levels=None, dtype=torch.float64, scale=True):
    """Scores in [-1, 1], targets in [0, 1] (quantised to `levels` values: ties), weight scales."""
    s = torch.rand(anchors, candidates, dtype=dtype) * 2 - 1
    t = torch.rand(anchors, candidates, dtype=dtype)
    if levels:
        s, t = (s * levels).round() / levels, (t * levels).round() / levels
    c = torch.where(torch.rand(anchors, candidates) < 0.3, 0.1, 1.0).to(dtype) if scale else None
    return s, t, c


def average_precision(scores, relevant):
    """AP of one ranked list: mean over relevant items of the precision at their rank."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, precisions = 0, []
    for rank, i in enumerate(order, start=1):
        if relevant[i]:
            hits += 1
            precisions.append(hits / rank)
    return sum(precisions) / len(precisions)


@pytest.mark.parametrize("algorithm", ["pairwise", "sorted"])
@pytest.mark.parametrize("levels", [None, 4])
def test_values_and_gradients_match_the_reference(algorithm, levels):
    s, t, c = lists(6, 70, levels=levels)
    s.requires_grad_(True)
    got = sdd_fast.continuous_ap_loss(s, t, c, algorithm=algorithm, reduction="none", **OPTIONS)
    want = reference.continuous_ap_loss(s, t, c, **OPTIONS)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    (grad,) = torch.autograd.grad(got.sum() * 0.7, s)
    (grad_ref,) = torch.autograd.grad(want.sum() * 0.7, s)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-9, atol=1e-12)
    assert grad.abs().sum() > 0


def test_binary_targets_with_the_hard_step_give_one_minus_average_precision():
    s, _, _ = lists(5, 40)
    relevant = torch.rand(5, 40) < 0.3
    relevant[:, 0] = True  # every anchor has a positive
    loss = sdd_fast.continuous_ap_loss(s, relevant.double(), theta=0.0, lam=1.0, hard_step=True, reduction="none")
    ap = torch.tensor([average_precision(s[a].tolist(), relevant[a].tolist()) for a in range(5)], dtype=torch.float64)
    torch.testing.assert_close(loss, 1 - ap, rtol=1e-12, atol=1e-12)
    # the sorted algorithm and the reference agree
    for other in (sdd_fast.continuous_ap_loss(s, relevant.double(), theta=0.0, lam=1.0, hard_step=True,
                                              reduction="none", algorithm="sorted"),
                  reference.continuous_ap_loss(s, relevant.double(), theta=0.0, lam=1.0, tau=0.1, hard_step=True)):
        torch.testing.assert_close(other, 1 - ap, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("algorithm", ["pairwise", "sorted"])
def test_permuting_candidates_permutes_the_gradient_and_keeps_the_loss(algorithm):
    s, t, c = lists(4, 50, levels=8)
    perm = torch.randperm(50)
    s1 = s.clone().requires_grad_(True)
    s2 = s[:, perm].clone().requires_grad_(True)
    l1 = sdd_fast.continuous_ap_loss(s1, t, c, algorithm=algorithm, reduction="none", **OPTIONS)
    l2 = sdd_fast.continuous_ap_loss(s2, t[:, perm], c[:, perm], algorithm=algorithm, reduction="none", **OPTIONS)
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-14)
    (g1,), (g2,) = torch.autograd.grad(l1.sum(), s1), torch.autograd.grad(l2.sum(), s2)
    torch.testing.assert_close(g1[:, perm], g2, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("levels", [None, 16])
def test_long_lists_sorted_and_pairwise_agree(levels):
    s, t, c = lists(3, 1500, levels=levels)
    s.requires_grad_(True)
    results = []
    for algorithm in ("pairwise", "sorted", "auto"):
        loss = sdd_fast.continuous_ap_loss(s, t, c, algorithm=algorithm, reduction="none", **OPTIONS)
        results.append((loss, torch.autograd.grad(loss.sum(), s)[0]))
    for loss, grad in results[1:]:
        torch.testing.assert_close(loss, results[0][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-7, atol=1e-12)


def test_mean_skips_anchors_without_weight_and_float32_computes_in_float32():
    s, t, _ = lists(4, 30)
    t[1] = 0.1  # under theta: no weight
    per_anchor = sdd_fast.continuous_ap_loss(s, t, reduction="none", **OPTIONS)
    assert per_anchor[1] == 0
    mean = sdd_fast.continuous_ap_loss(s, t, **OPTIONS)
    torch.testing.assert_close(mean, per_anchor[[0, 2, 3]].mean())
    s32 = s.float().requires_grad_(True)
    loss32 = sdd_fast.continuous_ap_loss(s32, t.float(), **OPTIONS)
    assert loss32.dtype == torch.float32
    torch.testing.assert_close(loss32.double(), mean, rtol=1e-5, atol=1e-6)
    loss32.backward()
    assert s32.grad.dtype == torch.float32 and s32.grad[1].abs().sum() == 0


def test_non_finite_input_gives_nan_for_its_anchor_only():
    s, t, _ = lists(3, 20)
    s[2, 5] = float("nan")
    s.requires_grad_(True)
    loss = sdd_fast.continuous_ap_loss(s, t, reduction="none", **OPTIONS)
    assert torch.isfinite(loss[:2]).all() and torch.isnan(loss[2])
    (grad,) = torch.autograd.grad(loss[:2].sum(), s)
    assert torch.isfinite(grad[:2]).all()


def test_opcheck():
    s, t, c = lists(3, 12)
    s.requires_grad_(True)
    args = (s, t, c, 0.3, 1.5, 0.2, False, "auto")
    torch.library.opcheck(torch.ops.sdd.continuous_ap_loss.default, args)
    torch.library.opcheck(torch.ops.sdd.continuous_ap_loss.default, (s, t, None, 0.3, 1.5, 0.2, False, "sorted"))


@pytest.mark.parametrize("call, message", [
    (lambda s, t: sdd_fast.continuous_ap_loss(s[0], t), "scores must be 2-D"),
    (lambda s, t: sdd_fast.continuous_ap_loss(s, t[:, :3]), "targets must have the shape of scores"),
    (lambda s, t: sdd_fast.continuous_ap_loss(s, t, t[:, :2]), "weight_scale must have the shape of scores"),
    (lambda s, t: sdd_fast.continuous_ap_loss(s, t, tau=0.0), "tau must be finite and > 0"),
    (lambda s, t: sdd_fast.continuous_ap_loss(s, t, lam=-1.0), "lam must be finite and >= 0"),
    (lambda s, t: sdd_fast.continuous_ap_loss(s, t, theta=float("nan")), "theta must be finite"),
    (lambda s, t: sdd_fast.continuous_ap_loss(s, t, algorithm="fast"), "algorithm must be one of"),
    (lambda s, t: sdd_fast.continuous_ap_loss(s, t, reduction="sum"), "reduction must be one of"),
])
def test_bad_arguments_are_named(call, message):
    s, t, _ = lists(2, 5)
    with pytest.raises(ValueError, match=message):
        call(s, t)


def test_the_op_checks_its_arguments_as_the_wrapper_does():
    s, t, _ = lists(2, 5)
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        torch.ops.sdd.continuous_ap_loss(s, t, None, 0.3, 1.0, -1.0, False, "auto")
    with pytest.raises(ValueError, match="targets must have the shape of scores"):
        torch.ops.sdd.continuous_ap_loss(s, t[:, :2], None, 0.3, 1.0, 0.1, False, "auto")
    with pytest.raises(TypeError, match="scores must be a floating-point tensor"):
        torch.ops.sdd.continuous_ap_loss(s.long(), t, None, 0.3, 1.0, 0.1, False, "auto")
