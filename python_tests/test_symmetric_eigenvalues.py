"""The lane-parallel eigensolver of the CPU kernels (csrc/cpu/symmetric_eigenvalues.cpp) against
LAPACK (torch.linalg.eigvalsh, float64) and against matrices whose spectrum is known exactly.

Bound: a backward-stable solver's eigenvalues are within a small multiple of m * eps * ||A||_2 of
the exact ones; 8 m eps ||A||_2 here."""

import math

import pytest
import torch
from helpers import run_on_lane_copy

from sdd_fast import _C

EPS = torch.finfo(torch.float64).eps


def solve(matrices: torch.Tensor) -> torch.Tensor:
    return _C.symmetric_eigenvalues(matrices)


def assert_spectra_close(matrices: torch.Tensor, expected: torch.Tensor):
    got = solve(matrices)
    assert got.shape == expected.shape
    m = matrices.shape[-1]
    norm = expected.abs().amax(dim=1, keepdim=True)
    bound = 8 * m * EPS * norm + 1e-300
    worst = ((got - expected).abs() / bound).max().item()
    assert worst <= 1.0, f"eigenvalue error {worst:.2f}x the bound 8 m eps ||A||"
    assert torch.all(got[:, 1:] >= got[:, :-1]), "not ascending"


def symmetric(count, m, generator):
    a = torch.randn(count, m, m, dtype=torch.float64, generator=generator)
    return a + a.transpose(1, 2)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 8, 13, 31, 64, 68, 97])
@pytest.mark.parametrize("count", [1, 3, 9, 17])
def test_random_symmetric_matches_lapack(m, count):
    g = torch.Generator().manual_seed(1000 * m + count)
    a = symmetric(count, m, g)
    assert_spectra_close(a, torch.linalg.eigvalsh(a))


def test_a_matrix_gets_the_same_bits_in_any_lane():
    """Each lane deflates on its own and, outside its window, rotates by the identity: a matrix's
    eigenvalues do not depend on its lane or on the matrices beside it (up to 4 groups of lanes share
    one QR for eigenvalues only), here a failed (NaN) and an already diagonal one among them."""
    g = torch.Generator().manual_seed(11)
    a = symmetric(45, 24, g)
    a[7, 2, 5] = a[7, 5, 2] = float("nan")
    a[9] = torch.diag(torch.arange(24.0, dtype=torch.float64))
    together = solve(a)
    assert together[7].isnan().all() and torch.equal(together[9], torch.arange(24.0, dtype=torch.float64))
    for j in (0, 8, 31, 44):
        assert torch.equal(solve(a[j : j + 1]), together[j : j + 1])
    shuffled = torch.randperm(45, generator=g)
    assert torch.equal(solve(a[shuffled]).nan_to_num(7.0), together[shuffled].nan_to_num(7.0))


@pytest.mark.parametrize("m", [4, 24, 64, 96])
def test_rank_deficient_grams_match_lapack(m):
    """Grams of centred clusters and of a few points: rank < m, many (near-)zero eigenvalues."""
    g = torch.Generator().manual_seed(m)
    x = torch.randn(19, m, max(1, m // 3), dtype=torch.float64, generator=g)
    x = x - x.mean(dim=1, keepdim=True)
    grams = x @ x.transpose(1, 2)
    assert_spectra_close(grams, torch.linalg.eigvalsh(grams))


def test_clustered_feature_grams_match_lapack():
    """The matrices the kernels solve: Grams of normalised feature clusters [n, 384], zero-padded rows."""
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(4, 384, dtype=torch.float64, generator=g)
    points = centres.repeat_interleave(16, 0) + 0.2 * torch.randn(64, 384, dtype=torch.float64, generator=g)
    points = points / points.norm(dim=1, keepdim=True)
    grams = []
    for rows in (64, 41, 7):
        block = torch.zeros(64, 384, dtype=torch.float64)
        block[:rows] = points[:rows] - points[:rows].mean(0)
        grams.append(block @ block.T)
    grams = torch.stack(grams)
    assert_spectra_close(grams, torch.linalg.eigvalsh(grams))


@pytest.mark.parametrize("m", [8, 40, 100])
def test_graded_spectrum_matches_lapack(m):
    """Eigenvalues spread over 14 decades, most of them tiny next to the norm (as the Grams of
    clusters have): the root-free sweeps' running p and gamma go through values far below the
    entries; 40 matrices fill a quad of groups and part of the next."""
    g = torch.Generator().manual_seed(m)
    q = torch.linalg.qr(torch.randn(40, m, m, dtype=torch.float64, generator=g))[0]
    spectrum = torch.logspace(0, -14, m, dtype=torch.float64) * torch.where(torch.arange(m) % 3 == 0, -1.0, 1.0)
    a = q @ torch.diag_embed(spectrum.expand(40, m)) @ q.transpose(1, 2)
    a = (a + a.transpose(1, 2)) / 2
    assert_spectra_close(a, torch.linalg.eigvalsh(a))


@pytest.mark.parametrize("m", [2, 7, 40])
def test_known_spectrum(m):
    """Q diag(lambda) Q^T with repeated, zero, negative and spread eigenvalues."""
    g = torch.Generator().manual_seed(m)
    q, _ = torch.linalg.qr(torch.randn(m, m, dtype=torch.float64, generator=g))
    values = torch.linspace(-3, 5, m, dtype=torch.float64)
    values[: m // 3] = 1.5  # a repeated eigenvalue
    values[-1] = 0.0
    a = (q * values) @ q.T
    a = 0.5 * (a + a.T)
    assert_spectra_close(a[None], torch.sort(values).values[None])


def test_exact_cases():
    zero = torch.zeros(2, 9, 9, dtype=torch.float64)
    assert torch.equal(solve(zero), torch.zeros(2, 9, dtype=torch.float64))
    diagonal = torch.diag_embed(torch.tensor([[3.0, -1.0, 2.0, 2.0, 0.0, 7.5]], dtype=torch.float64))
    assert torch.equal(solve(diagonal), torch.tensor([[-1.0, 0.0, 2.0, 2.0, 3.0, 7.5]], dtype=torch.float64))
    # [[a, b], [b, c]]: (a + c) / 2 -+ sqrt(((a - c) / 2)^2 + b^2)
    a, b, c = 0.3, -1.7, 2.2
    two = torch.tensor([[[a, b], [b, c]]], dtype=torch.float64)
    root = math.sqrt(((a - c) / 2) ** 2 + b * b)
    expected = torch.tensor([[(a + c) / 2 - root, (a + c) / 2 + root]], dtype=torch.float64)
    assert torch.allclose(solve(two), expected, rtol=0, atol=4 * EPS * 3)


def test_splits_inside_the_matrix():
    """Block-diagonal and tridiagonal matrices with zero couplings in the middle: every block must
    converge (the QR window has to restart below a split, not only deflate at the bottom)."""
    g = torch.Generator().manual_seed(5)
    blocks = [symmetric(1, n, g)[0] for n in (5, 1, 9, 3)]
    a = torch.block_diag(*blocks)[None]
    assert_spectra_close(a, torch.linalg.eigvalsh(a))
    t = torch.diag(torch.randn(30, dtype=torch.float64, generator=g))
    off = torch.randn(29, dtype=torch.float64, generator=g)
    off[[3, 4, 17, 28]] = 0.0
    t = t + torch.diag(off, 1) + torch.diag(off, -1)
    assert_spectra_close(t[None], torch.linalg.eigvalsh(t[None]))


def test_close_pairs_wilkinson_matrix():
    """Wilkinson's W21+: pairs of eigenvalues equal to ~1e-13."""
    n = 21
    t = torch.diag(torch.tensor([abs(10 - i) for i in range(n)], dtype=torch.float64))
    ones = torch.ones(n - 1, dtype=torch.float64)
    t = t + torch.diag(ones, 1) + torch.diag(ones, -1)
    assert_spectra_close(t[None], torch.linalg.eigvalsh(t[None]))


@pytest.mark.parametrize("scale", [1e-200, 1e-30, 1e30, 1e200])
def test_extreme_scales(scale):
    g = torch.Generator().manual_seed(7)
    a = symmetric(5, 12, g) * scale
    assert_spectra_close(a, torch.linalg.eigvalsh(a))


def test_non_finite_matrix_gets_nan_and_leaves_the_others():
    g = torch.Generator().manual_seed(9)
    a = symmetric(11, 10, g)
    a[3, 4, 2] = a[3, 2, 4] = float("nan")
    a[8, 0, 0] = float("inf")
    got = solve(a)
    assert torch.isnan(got[3]).all() and torch.isnan(got[8]).all()
    keep = [i for i in range(11) if i not in (3, 8)]
    assert_spectra_close(a[keep], torch.linalg.eigvalsh(a[keep]))


def test_lower_triangle_only_is_read():
    g = torch.Generator().manual_seed(11)
    a = symmetric(3, 16, g)
    upper_garbage = a + torch.triu(torch.randn(3, 16, 16, dtype=torch.float64, generator=g), diagonal=1)
    assert torch.equal(solve(upper_garbage), solve(a))


@pytest.mark.parametrize("rows,d", [(4, 3), (8, 384), (64, 384), (68, 50), (12, 13)])
def test_gram_eigenvalues_match_lapack(rows, d):
    """The Grams formed in the solver's layout (lower triangle, vectors along the columns, a
    remainder when d is not a multiple of the lanes), zero-padded rows included."""
    g = torch.Generator().manual_seed(rows * d)
    x = torch.randn(13, rows, d, dtype=torch.float64, generator=g)
    x[5, rows // 2 :] = 0.0  # a short matrix padded with zero rows
    x = x - x.mean(dim=2, keepdim=True) * (torch.arange(13) % 2).view(13, 1, 1)
    grams = x @ x.transpose(1, 2)
    expected = torch.linalg.eigvalsh(grams)
    got = _C.gram_eigenvalues(x)
    # Two Grams summed in different orders differ entrywise by up to ~2 d eps ||x_i|| ||x_j||, which
    # moves eigenvalues by at most rows times that; plus each solver's 8 m eps ||G||.
    row_norms = (x * x).sum(dim=2).amax(dim=1, keepdim=True)
    bound = 2 * rows * d * EPS * row_norms + 2 * 8 * rows * EPS * expected.abs().amax(dim=1, keepdim=True)
    assert ((got - expected).abs() <= bound).all()
    x[2, 1, 1] = float("inf")
    assert torch.isnan(_C.gram_eigenvalues(x)[2]).all()


@pytest.mark.parametrize("d", [50, 384])
def test_gram_eigenvalues_by_group_size_are_the_same_bits(d):
    """With `sizes`, each matrix's Gram is formed over its own rows and each group of lanes is
    reduced at its largest member's size instead of the whole batch's: the same eigenvalues to
    rounding (the zero block decouples exactly; the reduction's last rows are summed in another
    order for a matrix that reaches its group's size), and still LAPACK's (sizes spread as
    k-means clusters' are)."""
    g = torch.Generator().manual_seed(d)
    sizes = [int(s) for s in torch.randint(2, 161, (37,), generator=g).sort(descending=True).values]
    sizes[20] = 160  # a large matrix in a later group: its group reaches the full size
    rows = 160
    x = torch.randn(37, rows, d, dtype=torch.float64, generator=g)
    for j, n in enumerate(sizes):
        x[j, n:] = 0.0
        x[j, :n] -= x[j, :n].mean(dim=0)
    full = _C.gram_eigenvalues(x)
    by_size = _C.gram_eigenvalues(x, sizes)
    largest = full.abs().amax(dim=1, keepdim=True)
    assert ((by_size - full).abs() <= 8 * rows * EPS * largest).all()
    # members that end a 4-row block or more before their group's size: the same bits (in groups
    # reduced in lanes; a group of widely differing sizes is reduced one matrix at a time, whose
    # agreement the bounds here and test_ragged_groups.py check)
    lanes = _C.eigensolver_lanes()
    group_size = [-(-max(sizes[j // lanes * lanes : (j // lanes + 1) * lanes]) // 4) * 4 for j in range(37)]
    in_lanes = lanes_reduced(sizes, lanes)
    inner = [j for j in range(37) if -(-sizes[j] // 4) * 4 <= group_size[j] - 4 and in_lanes[j]]
    assert len(inner) >= 10 and torch.equal(by_size[inner], full[inner])
    expected = torch.linalg.eigvalsh(x @ x.transpose(1, 2))
    row_norms = (x * x).sum(dim=2).amax(dim=1, keepdim=True)
    bound = 2 * rows * d * EPS * row_norms + 2 * 8 * rows * EPS * expected.abs().amax(dim=1, keepdim=True)
    assert ((by_size - expected).abs() <= bound).all()
    with pytest.raises(RuntimeError, match="sizes"):
        _C.gram_eigenvalues(x, sizes[:-1])
    sizes[3] = 1
    with pytest.raises(RuntimeError, match=r"sizes\[3\]"):
        _C.gram_eigenvalues(x, sizes)  # rows beyond a size must be zero


def lanes_reduced(sizes: list, lanes: int) -> list:
    """Per matrix (sizes sorted descending, as the kernels sort them): whether the eigenvalues-only
    solver reduces its group in lanes, the rule of symmetric_eigenvalues.cpp (ragged_group): one
    matrix at a time when the group's size is >= 96 and lanes * size^3 > 1.5 * sum of the members'
    own sizes^3 (each rounded up to 4). Groups of `lanes` matrices start at multiples of it."""
    def up4(n):
        return -(-n // 4) * 4

    flags = []
    for start in range(0, len(sizes), lanes):
        group = [up4(n) for n in sizes[start:start + lanes]]
        size = max(group)
        ragged = size >= 96 and lanes * size ** 3 > 1.5 * sum(n ** 3 for n in group)
        flags += [not ragged] * len(group)
    return flags


def test_bad_argument_is_named():
    with pytest.raises(RuntimeError, match="matrices"):
        solve(torch.zeros(2, 3, 3, dtype=torch.float32))
    with pytest.raises(RuntimeError, match="matrices"):
        solve(torch.zeros(2, 3, 4, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="matrices"):
        _C.gram_eigenvalues(torch.zeros(2, 5, 4, dtype=torch.float64))


_EVERY_COPY = """
import torch
from sdd_fast import _C
g = torch.Generator().manual_seed(21)
a = torch.randn(19, 37, 37, dtype=torch.float64, generator=g)
a = a + a.transpose(1, 2)
x = torch.randn(11, 24, 50, dtype=torch.float64, generator=g)
x[3, 13:] = 0.0
eps, ok = torch.finfo(torch.float64).eps, True
for got, expected, m in ((_C.symmetric_eigenvalues(a), torch.linalg.eigvalsh(a), 37),
                         (_C.gram_eigenvalues(x), torch.linalg.eigvalsh(x @ x.transpose(1, 2)), 24)):
    norm = expected.abs().amax(dim=1, keepdim=True)
    ok = ok and bool(((got - expected).abs() <= 8 * m * eps * norm + 2 * 24 * 50 * eps * norm).all())
values, vectors = _C.symmetric_eigh(a)  # the eigenvector steps of the same copy
residual = torch.linalg.matrix_norm(a @ vectors - vectors * values.unsqueeze(1), ord=2)
ok = ok and bool((residual <= 16 * 37 * eps * torch.linalg.matrix_norm(a, ord=2)).all())
orthogonality = (vectors.transpose(1, 2) @ vectors - torch.eye(37, dtype=torch.float64)).abs()
ok = ok and bool((orthogonality <= 16 * 37 * eps).all())
ok = ok and torch.equal(values, _C.symmetric_eigenvalues(a))
print(_C.eigensolver_lanes(), ok)
"""


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_every_instruction_set_copy(lanes):
    """The kernel is compiled once per instruction set and the widest the CPU runs is picked;
    SDD_CPU_LANES asks for a narrower one, so each copy this machine can run is checked here
    (eigenvalues, and eigenvectors: residual, orthogonality, the same eigenvalue bits)."""
    assert run_on_lane_copy(_EVERY_COPY, lanes)
