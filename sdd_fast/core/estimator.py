"""`dse()`: the Dense representation Structure Estimator as one differentiable call."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .library import assert_has_ops
from .options import DEFAULTS, DSE_FIELDS, check_dse_arguments

BACKENDS = ("compiled", "reference")


class DSEResult(NamedTuple):
    """The metric and its components, each a 0-d tensor (differentiable w.r.t. the features).

    dse = inter + dim - (intra_image + intra_batch) / 2; higher is better.
    """

    dse: torch.Tensor
    inter: torch.Tensor  # M_inter: distance to the nearest other cluster, / s
    intra_image: torch.Tensor  # M_intra_image: cluster spread within images, / s
    intra_batch: torch.Tensor  # M_intra_batch: cluster spread within groups of images, / s
    dim: torch.Tensor  # M_dim: normalised effective rank of patch sets

    def to_dict(self) -> dict:
        """The five numbers as Python floats (one device sync)."""
        values = torch.stack([v.detach() for v in self]).double().cpu().tolist()
        return dict(zip(self._fields, values))



assert DSEResult._fields == DSE_FIELDS, "DSEResult's fields are torch.ops.sdd.dse's outputs, in order"

def dse(feats, *, local_k=DEFAULTS.local_k, global_k=DEFAULTS.global_k, group=DEFAULTS.group,
        normalize=DEFAULTS.normalize, iters=DEFAULTS.iters, tol=DEFAULTS.tol, n_init=DEFAULTS.n_init,
        seeding=DEFAULTS.seeding, seed=DEFAULTS.seed, local_labels=None, global_labels=None, validate=False,
        backend="compiled") -> DSEResult:
    """Dense representation Structure Estimator of patch features (docs/SPEC.md; arXiv 2510.17299).

    Args:
        feats (Tensor[B, N, d]): patch tokens of B images (no CLS / register tokens), any
            float dtype, device and strides. fp16 / bf16 / fp32 are computed in fp32; fp64 in fp64.
            On the CPU the small spectra (Grams of clusters, of the batch) are fp64 whatever
            the input: an fp32 Gram loses singular values under ~3e-4 of the largest.
        local_k (int): k-means clusters per image (M_intra_image). Needs N >= 2 * local_k.
        global_k (int): k-means clusters per group of images (M_intra_batch, M_inter).
        group (int): images per group; consecutive images, the last group may be smaller
            but must hold >= 2 * global_k patches.
        normalize (bool): L2-normalise every patch first.
        iters, tol, n_init, seeding, seed: k-means options (see `sdd_fast.kmeans`). The
            M_dim permutation is drawn from `seed` too; torch's global RNG is untouched.
        local_labels (Tensor[B, N] int64, optional): per-image clusters replacing k-means.
        global_labels (Tensor[G, group * N] int64, optional): per-group clusters replacing
            k-means (G = ceil(B / group); entries past a smaller last group are ignored).
        validate (bool): raise ValueError on NaN / Inf features (instead of NaN results) and on
            labels outside [0, k) (which the CUDA kernels do not check: a device assert or
            garbage). Costs a device sync, so it is off by default (training loops, CUDA graphs).
        backend (str): "compiled" (C++ / CUDA ops) or "reference" (plain PyTorch, slow).

    Returns:
        DSEResult(dse, inter, intra_image, intra_batch, dim) of 0-d tensors. Gradients flow
        to `feats`; cluster labels, centroids and the permutation are constants.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    check_dse_arguments(feats, local_k, global_k, group, normalize, iters, tol, n_init, seeding, seed,
                        local_labels, global_labels, check_range=validate or backend == "reference")
    if validate and not bool(torch.isfinite(feats).all()):
        raise ValueError("feats contains NaN or Inf")
    if backend == "reference":
        from . import reference

        values = reference.dse(feats, local_k=local_k, global_k=global_k, group=group, normalize=normalize,
                               iters=iters, tol=tol, n_init=n_init, seeding=seeding, seed=seed,
                               local_labels=local_labels, global_labels=global_labels)
    else:
        assert_has_ops()
        values = torch.ops.sdd.dse(feats, local_k, global_k, group, normalize, iters, float(tol), n_init, seeding,
                                   seed, local_labels, global_labels)
    return DSEResult(*values.unbind(0))


def check_shape(shape: tuple, **options) -> None:
    """Raises `dse`'s ValueError when patch tokens of `shape` [B, N, d] cannot be measured with
    `options` (too few patches for the clusters, ...); runs no kernel (a meta tensor)."""
    dse(torch.empty(shape, device="meta"), **options)
