"""SPEC "Edge cases": clear errors before any work, NaN propagation, collapse, dtypes."""

import pytest
import torch
from helpers import call_dse, dse_labels

import sdd_fast

OPTS = dict(local_k=3, global_k=6, group=4)


@pytest.mark.parametrize(
    "shape, kwargs, error, match",
    [
        ((4, 5, 8), {}, ValueError, "local_k = 3 needs N >= 2 \\* local_k"),
        ((5, 4, 8), dict(local_k=2, global_k=5, group=4), ValueError, "last group of images holds 4 patches"),
        ((4, 12, 8), dict(local_k=0), ValueError, "local_k must be >= 1"),
        ((4, 12, 8), dict(global_k=0), ValueError, "global_k must be >= 1"),
        ((4, 12, 8), dict(group=0), ValueError, "group must be >= 1"),
        ((0, 12, 8), {}, ValueError, "at least one image"),
        ((4, 12, 0), {}, ValueError, "at least one channel"),
        ((4, 12, 8), dict(seeding="random"), ValueError, "seeding must be one of"),
        ((4, 12, 8), dict(iters=-1), ValueError, "iters must be >= 0"),
        ((4, 12, 8), dict(n_init=0), ValueError, "n_init must be >= 1"),
        ((4, 12, 8), dict(backend="jax"), ValueError, "backend must be one of"),
    ],
)
def test_bad_arguments_name_the_argument(shape, kwargs, error, match):
    options = dict(OPTS)
    options.update(kwargs)
    with pytest.raises(error, match=match):
        sdd_fast.dse(torch.randn(shape), **options)


def test_op_level_checks_match():
    """Direct torch.ops callers get the same named errors from C++."""
    with pytest.raises(ValueError, match="local_k = 3 needs N >= 2 \\* local_k"):
        torch.ops.sdd.dse(torch.randn(4, 5, 8), 3, 6, 4)
    with pytest.raises(ValueError, match="feats must be 3-D"):
        torch.ops.sdd.dse(torch.randn(4, 5), 3, 6, 4)
    with pytest.raises(TypeError, match="feats must be a floating-point"):
        torch.ops.sdd.dse(torch.ones(4, 12, 8, dtype=torch.int32), 3, 6, 4)
    with pytest.raises(ValueError, match="global_labels must hold values in"):
        torch.ops.sdd.dse(torch.randn(4, 12, 8), 3, 6, 4, global_labels=torch.full((1, 48), 6))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_or_bool_feats_rejected(dtype):
    with pytest.raises(TypeError, match="feats must be a floating-point"):
        sdd_fast.dse(torch.ones(4, 12, 8, dtype=dtype), **OPTS)


def test_not_3d_rejected():
    with pytest.raises(ValueError, match="feats must be 3-D"):
        sdd_fast.dse(torch.randn(48, 8), **OPTS)
    with pytest.raises(TypeError, match="feats must be a torch.Tensor"):
        sdd_fast.dse([[1.0]], **OPTS)


@pytest.mark.parametrize(
    "name, labels, error, match",
    [
        ("local_labels", torch.zeros(4, 11, dtype=torch.int64), ValueError, "local_labels must have shape"),
        ("local_labels", torch.zeros(4, 12, dtype=torch.int32), TypeError, "local_labels must be int64"),
        ("local_labels", torch.full((4, 12), 3, dtype=torch.int64), ValueError, "local_labels must hold values"),
        ("global_labels", torch.zeros(2, 48, dtype=torch.int64), ValueError, "global_labels must have shape"),
        ("global_labels", torch.full((1, 48), -1, dtype=torch.int64), ValueError, "global_labels must hold values"),
    ],
)
def test_bad_labels(name, labels, error, match):
    with pytest.raises(error, match=match):
        sdd_fast.dse(torch.randn(4, 12, 8), **OPTS, **{name: labels})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_gives_nan(device, bad):
    feats = torch.randn(8, 12, 8, device=device)
    feats[3, 4, 5] = bad
    out = call_dse(feats, **OPTS)
    assert bool(torch.isnan(out).all())
    with pytest.raises(ValueError, match="feats contains NaN or Inf"):
        sdd_fast.dse(feats, validate=True, **OPTS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e3])
def test_collapse(device, dtype, scale):
    """All patches equal: no NaN; inter = intra = 0; dim = 1/min(B, d); finite gradients."""
    row = torch.randn(16, dtype=dtype) * scale
    feats = row.expand(8, 12, 16).clone().to(device).requires_grad_()
    result = sdd_fast.dse(feats, **OPTS)
    d = result.to_dict()
    assert d["inter"] == 0 and d["intra_image"] == 0 and d["intra_batch"] == 0
    assert d["dim"] == pytest.approx(1 / 8, rel=1e-6)
    result.dse.backward()
    assert bool(torch.isfinite(feats.grad).all())


def test_collapse_with_rounding_noise_is_detected():
    """fp32 mean leaves ~1e-8 noise: still a collapse (relative test), not noise / noise."""
    row = torch.randn(16)
    feats = row.expand(8, 12, 16).clone()
    feats += 1e-9 * torch.randn_like(feats)
    d = sdd_fast.dse(feats, **OPTS).to_dict()
    assert d["inter"] == 0 and d["intra_batch"] == 0


def test_all_zero_features():
    feats = torch.zeros(8, 12, 16, requires_grad=True)
    result = sdd_fast.dse(feats, **OPTS)
    assert result.to_dict()["dim"] == pytest.approx(1 / 8, rel=1e-6)
    result.dse.backward()
    assert bool(torch.isfinite(feats.grad).all())


def test_missing_library_says_how_to_build(monkeypatch):
    from sdd_fast.core import library as _library

    monkeypatch.setattr(_library, "_C", None)
    monkeypatch.setattr(_library, "_LOAD_ERROR", ImportError("no _C"))
    with pytest.raises(RuntimeError, match="make build"):
        sdd_fast.dse(torch.randn(8, 12, 8), **OPTS)
    # The reference backend still works without it.
    feats = torch.randn(8, 12, 8, dtype=torch.float64)
    assert torch.isfinite(torch.stack(list(sdd_fast.dse(feats, backend="reference", **OPTS)))).all()


def test_given_labels_are_used(device):
    feats = torch.randn(8, 12, 8, device=device)
    local, glob, _ = dse_labels(feats, **OPTS)
    other_local = (torch.arange(12, device=local.device) % 3).expand(8, 12).contiguous()  # another partition
    a = call_dse(feats, local_labels=local, global_labels=glob, **OPTS)
    b = call_dse(feats, local_labels=other_local, global_labels=glob, **OPTS)
    assert a[2] != b[2] and a[3] == b[3]


def test_building_blocks_return_nan_on_non_finite_input(device):
    """A non-finite matrix gives NaN for it (as dse does), never an error, and leaves the other
    matrices of the batch as they were."""
    y = torch.randn(3, 5, 8, device=device)
    clean = sdd_fast.effective_rank(y)
    y[1, 2, 3] = float("nan")
    ranks = sdd_fast.effective_rank(y)
    assert torch.isnan(ranks[1]) and torch.equal(ranks[[0, 2]], clean[[0, 2]])
    x = torch.randn(2, 20, 6, device=device)
    labels = torch.randint(0, 3, (2, 20), device=device)
    x[0, 3, 1] = float("inf")
    values, _ = sdd_fast.cluster_singular_sum(x, labels, 3)
    assert torch.isnan(values[0, labels[0, 3]]) and torch.isfinite(values[1]).all()
