"""Baseline metrics (RankMe, dense RankMe, alpha-ReQ, LiDAR) against hand-computed cases and
independent numpy float64 references."""

import math

import numpy as np
import pytest
import torch

from sdd_fast.metrics import alpha_req, dense_rankme, eigenspectrum, lidar, rankme


def _entropy_rank(values, eps):
    p = np.asarray(values, dtype=np.float64)
    p = p / p.sum() + eps
    return math.exp(-(p * np.log(p)).sum())


def _orthonormal(rows, cols, seed, centred=False):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, cols))
    if centred:
        a -= a.mean(0)
    q, _ = np.linalg.qr(a)
    return q


# ---- RankMe ------------------------------------------------------------------------------------


def test_rankme_hand_computed():
    z = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    p = np.array([0.75, 0.25]) + 1e-7
    assert rankme(z) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert rankme(z) == pytest.approx(1.7548, abs=1e-4)


def test_rankme_full_and_collapsed():
    u, v = _orthonormal(200, 16, 0), _orthonormal(16, 16, 1)
    assert rankme(torch.from_numpy(u @ v)) == pytest.approx(16.0, rel=1e-5)  # equal singular values
    rank_one = torch.randn(200, 1) @ torch.randn(1, 16)
    assert rankme(rank_one) == pytest.approx(1.0, abs=1e-4)
    assert rankme(torch.zeros(5, 3)) == 0.0
    assert math.isnan(rankme(torch.full((5, 3), math.nan)))


def test_rankme_matches_numpy_and_dense_is_flattened():
    torch.manual_seed(0)
    feats = torch.randn(4, 25, 12) * torch.linspace(0.1, 2.0, 12)
    flat = feats.reshape(-1, 12).double().numpy()
    expected = _entropy_rank(np.linalg.svd(flat, compute_uv=False), 1e-7)
    assert rankme(feats.reshape(-1, 12)) == pytest.approx(expected, rel=1e-9)
    assert dense_rankme(feats) == pytest.approx(expected, rel=1e-9)
    assert dense_rankme(feats.half()) == pytest.approx(expected, rel=1e-2)


@pytest.mark.parametrize("bad, match", [(torch.zeros(3), "2-D"), (torch.zeros(3, 4, dtype=torch.long), "floating"),
                                        (np.zeros((3, 4)), "torch.Tensor")])
def test_rankme_rejects_bad_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        rankme(bad)


def test_dense_rankme_needs_three_dims():
    with pytest.raises(ValueError, match="feats"):
        dense_rankme(torch.zeros(10, 4))


# ---- alpha-ReQ ---------------------------------------------------------------------------------


def _power_law_embeddings(n, d, alpha, seed):
    """Centred embeddings whose covariance eigenvalues are exactly i^-alpha, i = 1..d."""
    u, v = _orthonormal(n, d, seed, centred=True), _orthonormal(d, d, seed + 1)
    lam = np.arange(1, d + 1, dtype=np.float64) ** -alpha
    return torch.from_numpy(u * np.sqrt(n * lam) @ v.T), lam


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_exact_exponent(alpha):
    z, lam = _power_law_embeddings(500, 32, alpha, seed=3)
    np.testing.assert_allclose(eigenspectrum(z).numpy()[:32], lam, rtol=1e-8)
    assert alpha_req(z) == pytest.approx(alpha, abs=1e-6)
    assert alpha_req(z, first=4, last=20) == pytest.approx(alpha, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.7, 1.3])
def test_alpha_req_recovers_sampled_exponent_within_0_1(alpha):
    gen = torch.Generator().manual_seed(5)
    d = 64
    scales = torch.arange(1, d + 1, dtype=torch.float64) ** (-alpha / 2)
    rotation = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))[0]
    z = torch.randn(20000, d, generator=gen, dtype=torch.float64) * scales @ rotation.T
    assert abs(alpha_req(z, first=1, last=32) - alpha) < 0.1


def test_alpha_req_stops_at_zero_eigenvalues_and_checks_range():
    z, _ = _power_law_embeddings(100, 8, 1.0, seed=7)
    padded = torch.cat([z, torch.zeros(100, 8, dtype=z.dtype)], 1)  # 8 extra zero directions
    assert alpha_req(padded) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="first=5, last=3"):
        alpha_req(z, first=5, last=3)
    with pytest.raises(ValueError, match="min\\(n - 1, d\\) = 8"):
        alpha_req(z, last=9)
    assert math.isnan(alpha_req(torch.ones(10, 4)))  # no variance at all


# ---- LiDAR -------------------------------------------------------------------------------------


def _lidar_numpy(z, delta=1e-4, eps=1e-8):
    z = np.asarray(z, dtype=np.float64)
    n, q, d = z.shape
    mu_i = z.mean(1)
    mu = mu_i.mean(0)
    sb = sum(np.outer(m - mu, m - mu) for m in mu_i) / (n - 1)
    sw = sum(np.outer(z[i, j] - mu_i[i], z[i, j] - mu_i[i]) for i in range(n) for j in range(q))
    sw = sw / (n * (q - 1)) + delta * np.eye(d)
    w, v = np.linalg.eigh(sw)
    root = v @ np.diag(w ** -0.5) @ v.T
    lam = np.linalg.eigvalsh(root @ sb @ root)
    return _entropy_rank(np.clip(lam, 0, None), eps)


def test_lidar_hand_computed_one_discriminant_direction():
    # Class means (+-2, 0): Sigma_b = diag(8, 0); views differ by (0, +-1): Sigma_w = diag(0, 2) + delta.
    z = torch.tensor([[[2.0, 1.0], [2.0, -1.0]], [[-2.0, 1.0], [-2.0, -1.0]]])
    eps = 1e-8
    expected = math.exp(-((1 + eps) * math.log(1 + eps) + eps * math.log(eps)))
    assert lidar(z) == pytest.approx(expected, rel=1e-9)
    assert lidar(z) == pytest.approx(_lidar_numpy(z), rel=1e-9)


def test_lidar_matches_numpy_and_is_invariant_to_linear_maps():
    gen = torch.Generator().manual_seed(11)
    n, q, d = 40, 4, 6
    centres = torch.randn(n, 1, d, generator=gen, dtype=torch.float64) * torch.tensor([3.0, 2, 1, 1, 0.5, 0.2])
    z = centres + 0.3 * torch.randn(n, q, d, generator=gen, dtype=torch.float64)
    value = lidar(z)
    assert value == pytest.approx(_lidar_numpy(z.numpy()), rel=1e-9)
    assert 1.0 < value < d
    mixing = torch.randn(d, d, generator=gen, dtype=torch.float64) + 3 * torch.eye(d, dtype=torch.float64)
    assert lidar(z @ mixing) == pytest.approx(value, rel=1e-3)  # LDA ignores invertible linear maps


def test_lidar_rejects_bad_input():
    with pytest.raises(ValueError, match="z must be"):
        lidar(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="q >= 2 views"):
        lidar(torch.zeros(4, 1, 3))
    with pytest.raises(ValueError, match="delta"):
        lidar(torch.zeros(4, 2, 3), delta=0.0)
