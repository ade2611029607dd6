"""Eigenvectors of the lane-parallel eigensolver (csrc/cpu/symmetric_eigenvalues.cpp: QR with
accumulated rotations, then the Householder back-transformation), which the CPU backward uses,
against float64 definitions: A U = U diag(values), U^T U = I, within a backward-stable solver's
bounds; eigenvalues bit-identical to the eigenvalues-only solver; zero-padded matrices decomposed
on their leading block exactly."""

import pytest
import torch

from sdd_fast import _C

EPS = torch.finfo(torch.float64).eps


def symmetric(count, m, generator):
    a = torch.randn(count, m, m, dtype=torch.float64, generator=generator)
    return a + a.transpose(1, 2)


def assert_decomposition(a: torch.Tensor, values: torch.Tensor, vectors: torch.Tensor, factor: float = 16.0):
    """Residual ||A u - lambda u|| <= factor m eps ||A||_2 and ||U^T U - I|| <= factor m eps, per matrix."""
    m = a.shape[-1]
    norm = torch.linalg.matrix_norm(a, ord=2).clamp_min(1e-300)
    residual = torch.linalg.matrix_norm(a @ vectors - vectors * values.unsqueeze(1), ord=2)
    worst = (residual / (m * EPS * norm)).max().item()
    assert worst <= factor, f"residual {worst:.1f} m eps ||A||"
    gram = vectors.transpose(1, 2) @ vectors
    identity = torch.eye(m, dtype=torch.float64).expand_as(gram)
    assert (gram - identity).abs().amax() <= factor * m * EPS, "eigenvectors not orthonormal"
    assert torch.all(values[:, 1:] >= values[:, :-1]), "not ascending"


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 17, 64, 97])
@pytest.mark.parametrize("count", [1, 9, 17])
def test_random_symmetric(m, count):
    g = torch.Generator().manual_seed(100 * m + count)
    a = symmetric(count, m, g)
    values, vectors = _C.symmetric_eigh(a)
    assert_decomposition(a, values, vectors)
    # The same steps as the eigenvalues-only solver, plus the rotations applied to vectors: same bits.
    assert torch.equal(values, _C.symmetric_eigenvalues(a))


@pytest.mark.parametrize("m", [8, 40, 96])
def test_rank_deficient_grams(m):
    """Centred clusters of few points: many (near-)zero eigenvalues, a degenerate null space."""
    g = torch.Generator().manual_seed(m)
    x = torch.randn(19, m, max(1, m // 4), dtype=torch.float64, generator=g)
    x = x - x.mean(dim=1, keepdim=True)
    grams = x @ x.transpose(1, 2)
    values, vectors = _C.symmetric_eigh(grams)
    assert_decomposition(grams, values, vectors)


def test_known_eigenvectors_up_to_sign():
    g = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(3, 30, 30, dtype=torch.float64, generator=g))
    spectrum = torch.linspace(-3.0, 7.0, 30, dtype=torch.float64)  # well separated: vectors unique up to sign
    a = q @ torch.diag(spectrum) @ q.transpose(1, 2)
    values, vectors = _C.symmetric_eigh(a)
    assert torch.allclose(values, spectrum.expand(3, 30), atol=1e-12)
    alignment = (vectors * q).sum(dim=1).abs()  # |u_j . q_j|
    assert torch.allclose(alignment, torch.ones_like(alignment), atol=1e-10)


def test_repeated_eigenvalues_give_the_eigenspace():
    """A repeated eigenvalue's vectors are any basis of its eigenspace: its projector is unique."""
    g = torch.Generator().manual_seed(6)
    q, _ = torch.linalg.qr(torch.randn(2, 12, 12, dtype=torch.float64, generator=g))
    spectrum = torch.tensor([0.0] * 4 + [1.0] * 5 + [2.5, 3.0, 4.0], dtype=torch.float64)
    a = q @ torch.diag(spectrum) @ q.transpose(1, 2)
    values, vectors = _C.symmetric_eigh(a)
    assert_decomposition(a, values, vectors)
    for lo, hi in [(0, 4), (4, 9)]:
        ours = vectors[:, :, lo:hi] @ vectors[:, :, lo:hi].transpose(1, 2)
        exact = q[:, :, lo:hi] @ q[:, :, lo:hi].transpose(1, 2)
        assert torch.allclose(ours, exact, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_scales(scale):
    g = torch.Generator().manual_seed(7)
    a = symmetric(5, 12, g)
    values, vectors = _C.symmetric_eigh(a * scale)
    assert torch.allclose(values / scale, _C.symmetric_eigh(a)[0], rtol=1e-13, atol=1e-13 * a.abs().max().item())
    assert_decomposition(a, values / scale, vectors)


def test_wilkinson_matrix():
    """W21+: pairs of eigenvalues equal to ~1e-14, with distinct eigenvectors all the same."""
    diagonal = torch.tensor([abs(10 - i) for i in range(21)], dtype=torch.float64)
    a = (torch.diag(diagonal) + torch.diag(torch.ones(20, dtype=torch.float64), 1)
         + torch.diag(torch.ones(20, dtype=torch.float64), -1)).unsqueeze(0)
    values, vectors = _C.symmetric_eigh(a)
    assert_decomposition(a, values, vectors)


def test_zero_padded_matrices_are_decomposed_on_their_block():
    """sizes[j] = n: the matrix is zero outside its leading n x n block; the result is that block's
    decomposition (n values, [n, n] vectors), zeros elsewhere, with the padded solve's eigenvalues."""
    g = torch.Generator().manual_seed(8)
    sizes = [1, 2, 5, 16, 23, 24, 9, 17, 3, 24, 11]
    a = symmetric(len(sizes), 24, g)
    for j, n in enumerate(sizes):
        a[j, n:, :] = 0.0
        a[j, :, n:] = 0.0
    values, vectors = _C.symmetric_eigh(a, sizes)
    padded = _C.symmetric_eigenvalues(a)
    for j, n in enumerate(sizes):
        block = a[j : j + 1, :n, :n]
        assert_decomposition(block, values[j : j + 1, :n], vectors[j : j + 1, :n, :n])
        assert (values[j, n:] == 0).all() and (vectors[j, n:] == 0).all() and (vectors[j, :, n:] == 0).all()
        # The block's eigenvalues and the padding's exact zeros are the padded solve's, bit for bit.
        merged = torch.sort(torch.cat([values[j, :n], torch.zeros(24 - n, dtype=torch.float64)])).values
        assert torch.equal(merged, padded[j])


@pytest.mark.parametrize("rows,d", [(4, 3), (12, 13), (64, 384), (68, 50), (224, 256)])
def test_gram_eigh(rows, d):
    """The Grams X X^T formed in the solver's layout, some matrices zero-padded below their rows."""
    g = torch.Generator().manual_seed(rows + d)
    x = torch.randn(13, rows, d, dtype=torch.float64, generator=g)
    sizes = [rows if j % 3 else max(1, rows - 1 - j) for j in range(13)]
    for j, n in enumerate(sizes):
        x[j, n:] = 0.0
    values, vectors = _C.gram_eigh(x, sizes)
    for j, n in enumerate(sizes):
        gram = (x[j, :n] @ x[j, :n].T).unsqueeze(0)
        # The Gram summed in another order differs entrywise by ~d eps ||x_i|| ||x_j||: room for it.
        slack = 2 * d * EPS * (x[j, :n] ** 2).sum(dim=1).max().item()
        residual = torch.linalg.matrix_norm(gram @ vectors[j, :n, :n] - vectors[j, :n, :n] * values[j, :n], ord=2)
        assert residual <= 16 * n * EPS * torch.linalg.matrix_norm(gram, ord=2) + n * slack
        orthogonality = vectors[j, :n, :n].T @ vectors[j, :n, :n] - torch.eye(n, dtype=torch.float64)
        assert orthogonality.abs().max() <= 16 * n * EPS
    assert torch.equal(_C.gram_eigh(x)[0].sort(dim=1).values, _C.gram_eigenvalues(x))


def test_non_finite_matrix_gets_nan_and_leaves_the_others():
    g = torch.Generator().manual_seed(9)
    a = symmetric(11, 10, g)
    a[3, 4, 2] = a[3, 2, 4] = float("nan")
    a[8, 0, 0] = float("inf")
    values, vectors = _C.symmetric_eigh(a)
    assert torch.isnan(values[[3, 8]]).all() and torch.isnan(vectors[[3, 8]]).all()
    keep = [i for i in range(11) if i not in (3, 8)]
    assert_decomposition(a[keep], values[keep], vectors[keep])


def test_bad_arguments_are_named():
    a = torch.zeros(2, 4, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="matrices"):
        _C.symmetric_eigh(a.float())
    with pytest.raises(RuntimeError, match="sizes"):
        _C.symmetric_eigh(a, [4])
    with pytest.raises(RuntimeError, match="sizes"):
        _C.symmetric_eigh(a, [4, 5])
    with pytest.raises(RuntimeError, match="matrices"):
        _C.gram_eigh(torch.zeros(2, 5, 3, dtype=torch.float64))
    nonzero = torch.eye(4, dtype=torch.float64).expand(2, 4, 4).contiguous()
    with pytest.raises(RuntimeError, match="not zero outside"):
        _C.symmetric_eigh(nonzero, [4, 2])
