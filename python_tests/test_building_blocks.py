"""cluster_singular_sum, effective_rank, inter_cluster_distance: reference agreement,
hand-computed answers, gradients."""

import math

import pytest
import torch
from helpers import norm_rel_err, rel_err

import sdd_fast
from sdd_fast import reference


def reference_singular_sums(x, labels, k):
    values = torch.zeros(x.shape[0], k, dtype=torch.float64)
    for p in range(x.shape[0]):
        for c in range(k):
            members = x[p][labels[p] == c].double().cpu()
            if len(members) >= 2:
                values[p, c] = reference.centered_singular_sum(members)
    return values


@pytest.mark.parametrize("shape", [(3, 40, 8), (2, 30, 50), (1, 200, 16)])  # Gram and covariance sides
def test_singular_sum_matches_reference(device, shape):
    P, M, d = shape
    x = torch.randn(shape, dtype=torch.float64)
    labels = torch.randint(0, 5, (P, M))
    labels[:, 0] = 4  # cluster 4 has one point somewhere -> value 0
    labels[:, 1:][labels[:, 1:] == 4] = 3
    expected = reference_singular_sums(x, labels, 5)
    values, counts = sdd_fast.cluster_singular_sum(x.float().to(device), labels.to(device), 5)
    assert rel_err(values.cpu(), expected) <= 1e-4
    assert torch.equal(counts.cpu(), torch.stack([torch.bincount(row, minlength=5) for row in labels]))
    assert bool((values[:, 4] == 0).all())


def with_singular_values(sigma, rows, centered, generator):
    """A [rows, len(sigma)] float64 matrix with exactly these singular values (columns sum to
    zero when `centered`, so centering leaves it unchanged)."""
    d = len(sigma)
    basis = torch.randn(rows, d + 1, dtype=torch.float64, generator=generator)
    if centered:
        basis[:, 0] = 1.0  # orthogonalised first, so the other columns become orthogonal to ones
    u = torch.linalg.qr(basis).Q[:, 1:] if centered else torch.linalg.qr(basis[:, :d]).Q
    v = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=generator)).Q
    return u @ torch.diag(torch.tensor(sigma, dtype=torch.float64)) @ v.T


# Two real directions at 4e-4 and 6e-4 of the largest: their eigenvalues (~2e-7 of the
# largest) sit under the rounding noise of an fp32 Gram, yet they are 5e-4 of the sum.
SMALL_TAIL = [10.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.006, 0.004]


def test_singular_sum_keeps_small_real_directions_in_fp32(device):
    g = torch.Generator().manual_seed(3)
    x = with_singular_values(SMALL_TAIL, 9, centered=True, generator=g) + torch.randn(8, dtype=torch.float64,
                                                                                         generator=g)
    expected = reference_singular_sums(x.unsqueeze(0), torch.zeros(1, 9, dtype=torch.int64), 1)
    assert abs(float(expected) * math.sqrt(8) - sum(SMALL_TAIL)) < 1e-9  # the construction holds
    values, _ = sdd_fast.cluster_singular_sum(x.float().unsqueeze(0).to(device), torch.zeros(1, 9, dtype=torch.int64,
                                                                                              device=device), 1)
    assert rel_err(values.cpu(), expected) <= 1e-4


def test_effective_rank_keeps_small_real_directions_in_fp32(device):
    g = torch.Generator().manual_seed(4)
    y = with_singular_values(SMALL_TAIL, 12, centered=False, generator=g)
    expected = reference.effective_rank(y)
    assert rel_err(sdd_fast.effective_rank(y.float().unsqueeze(0).to(device)).cpu(), expected.unsqueeze(0)) <= 1e-4


def test_singular_sum_two_points_hand_computed():
    """Two points a, b: one singular value ||a - b|| / sqrt(2); S = that / sqrt(max(1, d))."""
    a, b = torch.tensor([1.0, 2.0, 2.0]), torch.tensor([-1.0, 0.0, 2.0])
    x = torch.stack([a, b]).unsqueeze(0).double()
    values, _ = sdd_fast.cluster_singular_sum(x, torch.zeros(1, 2, dtype=torch.int64), 1)
    expected = math.sqrt(8.0) / math.sqrt(2.0) / math.sqrt(3.0)
    assert abs(float(values) - expected) < 1e-12


def test_effective_rank_hand_computed():
    """Orthogonal rows of lengths 3 and 4: p = (3/7, 4/7); equal lengths: erank = 1."""
    y = torch.tensor([[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([3 / 7, 4 / 7], dtype=torch.float64) + 1e-12
    expected = float(torch.exp(-(p * p.log()).sum()) / 2)
    eye = torch.eye(4, 6, dtype=torch.float64) * 2.5
    rank_one = torch.ones(5, 3, dtype=torch.float64)
    out = sdd_fast.effective_rank(torch.stack([y, y * 10]))
    assert abs(float(out[0]) - expected) < 1e-12 and abs(float(out[1]) - expected) < 1e-12
    assert abs(float(sdd_fast.effective_rank(eye.unsqueeze(0))) - 1.0) < 1e-9
    assert abs(float(sdd_fast.effective_rank(rank_one.unsqueeze(0))) - 1 / 3) < 1e-9


@pytest.mark.parametrize("shape", [(6, 8, 32), (4, 40, 12)])
def test_effective_rank_matches_reference(device, shape):
    y = torch.randn(shape, dtype=torch.float64)
    expected = torch.stack([reference.effective_rank(m) for m in y])
    assert rel_err(sdd_fast.effective_rank(y.float().to(device)).cpu(), expected) <= 1e-4
    assert rel_err(sdd_fast.effective_rank(y.to(device)).cpu(), expected) <= 1e-10


def test_inter_distance_hand_computed():
    """Points on a line, centroids at 0, 1, 5: a point at 0.2 labelled 0 is 0.8 from centroid 1."""
    centroids = torch.tensor([[[0.0], [1.0], [5.0]]], dtype=torch.float64)
    x = torch.tensor([[[0.2], [1.5], [4.0]]], dtype=torch.float64)
    labels = torch.tensor([[0, 1, 2]])
    expected = (0.8 + 1.5 + 3.0) / 3
    assert abs(float(sdd_fast.inter_cluster_distance(x, centroids, labels)) - expected) < 1e-12


def test_inter_distance_matches_reference(device):
    x = torch.randn(3, 50, 6, dtype=torch.float64)
    centroids = torch.randn(3, 7, 6, dtype=torch.float64)
    labels = torch.randint(0, 7, (3, 50))
    expected = torch.stack([reference.nearest_other_distance(x[p], centroids[p], labels[p]) for p in range(3)])
    out = sdd_fast.inter_cluster_distance(x.float().to(device), centroids.float().to(device), labels.to(device))
    assert rel_err(out.cpu(), expected) <= 1e-4


def test_gradients_match_reference_autograd(device):
    torch.manual_seed(0)
    x = torch.randn(2, 30, 10, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 30))
    w = torch.randn(2, 3, dtype=torch.float64)

    xr = x.clone().requires_grad_()
    ref = torch.stack([torch.stack([reference.centered_singular_sum(xr[p][labels[p] == c]) for c in range(3)])
                       for p in range(2)])
    (ref * w).sum().backward()
    xc = x.float().to(device).requires_grad_()
    values, _ = sdd_fast.cluster_singular_sum(xc, labels.to(device), 3)
    (values * w.float().to(device)).sum().backward()
    assert norm_rel_err(xc.grad, xr.grad) <= 1e-3


def gradcheck_inputs():
    torch.manual_seed(1)
    x = torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 1, 2, 0, 1, 2, 0, 1, 1]])
    return x, labels


def test_gradcheck_cluster_singular_sum():
    x, labels = gradcheck_inputs()
    assert torch.autograd.gradcheck(lambda t: sdd_fast.cluster_singular_sum(t, labels, 3)[0], (x,))


def test_gradcheck_effective_rank():
    y = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sdd_fast.effective_rank, (y,))


def test_gradcheck_inter_cluster_distance():
    x, labels = gradcheck_inputs()
    centroids = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sdd_fast.inter_cluster_distance, (x, centroids, labels))


def test_degenerate_clusters_have_finite_gradients():
    x = torch.ones(1, 6, 5, dtype=torch.float64, requires_grad=True)  # identical points
    values, _ = sdd_fast.cluster_singular_sum(x, torch.zeros(1, 6, dtype=torch.int64), 1)
    values.sum().backward()
    assert float(values.detach()) == 0.0 and bool(torch.isfinite(x.grad).all())
    y = torch.ones(1, 4, 3, dtype=torch.float64, requires_grad=True)  # rank one
    sdd_fast.effective_rank(y).sum().backward()
    assert bool(torch.isfinite(y.grad).all())


def test_bad_labels():
    x = torch.randn(2, 10, 3)
    with pytest.raises(TypeError, match="labels must be int64"):
        sdd_fast.cluster_singular_sum(x, torch.zeros(2, 10, dtype=torch.int32), 2)
    with pytest.raises(ValueError, match="labels must have shape"):
        sdd_fast.cluster_singular_sum(x, torch.zeros(2, 9, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match=r"labels must hold values in \[0, 2\)"):
        sdd_fast.cluster_singular_sum(x, torch.full((2, 10), 2, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="centroids must have shape"):
        sdd_fast.inter_cluster_distance(x, torch.randn(2, 3, 4), torch.zeros(2, 10, dtype=torch.int64))
