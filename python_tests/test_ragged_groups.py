"""Groups of widely differing sizes (k-means clusters of a few hundred points beside clusters of a
few dozen): the eigenvalues-only solver reduces such a group one matrix at a time, vectorised
along its rows, instead of every lane at the largest member's size. Checked against LAPACK
(torch.linalg.eigvalsh, float64), against the lane reduction (the same matrices without sizes),
on every instruction-set copy, for non-finite members, and through cluster_singular_sum against
the float64 reference."""

import pytest
import torch
from helpers import run_on_lane_copy
from test_symmetric_eigenvalues import lanes_reduced

import sdd_fast
from sdd_fast import _C, reference

EPS = torch.finfo(torch.float64).eps
# Grouped as given, W consecutive matrices a group: 300 beside 9 makes the first group ragged at every lane
# count (2, 4 and 8: the test below and every instruction-set copy check it).
SIZES = [300, 9, 251, 212, 171, 130, 90, 41, 120, 118, 117, 115, 113, 110, 64, 2, 33, 17]


def ragged_matrices(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(SIZES), max(SIZES), d, dtype=torch.float64, generator=g)
    for j, n in enumerate(SIZES):
        x[j, n:] = 0.0
        x[j, :n] -= x[j, :n].mean(dim=0)
    return x


@pytest.mark.parametrize("d", [48, 384])
def test_ragged_group_matches_lapack_and_the_lane_reduction(d):
    assert not all(lanes_reduced(SIZES, _C.eigensolver_lanes()))  # the one-matrix path is taken
    x = ragged_matrices(d, seed=d)
    rows = x.shape[1]
    by_size = _C.gram_eigenvalues(x, SIZES)
    expected = torch.linalg.eigvalsh(x @ x.transpose(1, 2))
    row_norms = (x * x).sum(dim=2).amax(dim=1, keepdim=True)
    bound = 2 * rows * d * EPS * row_norms + 2 * 8 * rows * EPS * expected.abs().amax(dim=1, keepdim=True)
    assert ((by_size - expected).abs() <= bound).all()
    full = _C.gram_eigenvalues(x)  # every group in lanes at the batch's size
    assert ((by_size - full).abs() <= 8 * rows * EPS * full.abs().amax(dim=1, keepdim=True)).all()
    # a member's zero rows give zero eigenvalues, exactly
    for j, n in enumerate(SIZES):
        assert int((by_size[j] == 0).sum()) >= rows - n


def test_non_finite_member_gets_nan_and_leaves_the_others():
    x = ragged_matrices(64, seed=3)
    clean = _C.gram_eigenvalues(x, SIZES)
    x[1, 7, 5] = float("nan")
    x[2, 0, 0] = float("inf")
    got = _C.gram_eigenvalues(x, SIZES)
    assert torch.isnan(got[1]).all() and torch.isnan(got[2]).all()
    others = [j for j in range(len(SIZES)) if j not in (1, 2)]
    assert torch.equal(got[others], clean[others])


def test_cluster_singular_sums_of_skewed_clusters_match_the_reference():
    """One image's worth of clusters whose sizes spread as real k-means clusters' do."""
    g = torch.Generator().manual_seed(11)
    sizes = [340, 260, 190, 150, 90, 50, 25, 5]  # all under d: the Gram side, one ragged group
    M, d, k = sum(sizes), 384, len(sizes)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    labels = labels[torch.randperm(M, generator=g)].unsqueeze(0)
    x = torch.randn(1, M, d, generator=g) + 3.0 * torch.randn(k, d, generator=g)[labels]
    values, _ = sdd_fast.cluster_singular_sum(x, labels, k)
    for c in range(k):
        members = x[0][labels[0] == c].double()
        expected = reference.centered_singular_sum(members)
        assert abs(values[0, c].item() - expected.item()) <= 1e-4 * expected.item()


_EVERY_COPY = """
import torch
from sdd_fast import _C
from test_ragged_groups import SIZES, ragged_matrices
from test_symmetric_eigenvalues import lanes_reduced
x = ragged_matrices(40, seed=5)
got = _C.gram_eigenvalues(x, SIZES)
expected = torch.linalg.eigvalsh(x @ x.transpose(1, 2))
eps, rows = torch.finfo(torch.float64).eps, x.shape[1]
bound = 2 * rows * 40 * eps * (x * x).sum(dim=2).amax(dim=1, keepdim=True) + 16 * rows * eps * expected.abs().amax(
    dim=1, keepdim=True)
ragged = not all(lanes_reduced(SIZES, _C.eigensolver_lanes()))  # the one-matrix path is taken
print(_C.eigensolver_lanes(), ragged and bool(((got - expected).abs() <= bound).all()))
"""


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_every_instruction_set_copy(lanes):
    assert run_on_lane_copy(_EVERY_COPY, lanes)
