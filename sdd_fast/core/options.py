"""Every default of the metric, stated once, and the argument checks shared by all backends."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SEEDINGS = ("greedy", "d2", "d")
DSE_FIELDS = ("dse", "inter", "intra_image", "intra_batch", "dim")  # what torch.ops.sdd.dse returns, in order
COMPONENTS = DSE_FIELDS[1:]  # the four numbers dse is made of (docs/SPEC.md)


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype every op computes and returns in: fp64 stays fp64; fp16 / bf16 / fp32 give fp32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


@dataclass(frozen=True)
class DSEDefaults:
    """The paper's defaults (docs/SPEC.md "Input and options")."""

    local_k: int = 3  # clusters per image (M_intra_image)
    global_k: int = 24  # clusters per group of images (M_intra_batch, M_inter)
    group: int = 8  # images per group
    normalize: bool = True  # L2-normalise every patch first
    iters: int = 20  # Lloyd iterations at most
    tol: float = 1e-4  # stop when the total centroid shift falls below this
    n_init: int = 1  # seedings per k-means; the least inertia wins
    seeding: str = "greedy"  # k-means++ variant: "greedy" | "d2" | "d"
    seed: int = 0  # counter-based RNG key (never the global RNG)


DEFAULTS = DSEDefaults()


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")


def check_kmeans_options(k, iters, tol, n_init, seeding, seed) -> None:
    """Raises ValueError / TypeError naming the first bad k-means option."""
    _check_int("k", k, 1)
    _check_int("iters", iters, 0)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool):
        raise TypeError(f"tol must be a number; got {type(tol).__name__}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0; got {tol:g}")  # as C++ prints a double
    _check_int("n_init", n_init, 1)
    if seeding not in SEEDINGS:
        raise ValueError(f"seeding must be one of {', '.join(map(repr, SEEDINGS))}; got {seeding!r}")
    _check_int("seed", seed, -(2**63))


def check_float_tensor(name: str, t, dim: int) -> None:
    """Raises TypeError unless `t` is a floating-point tensor, ValueError unless it is `dim`-D."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (fp16, bf16, fp32 or fp64); got {t.dtype}")
    if t.dim() != dim:
        raise ValueError(f"{name} must be {dim}-D; got shape {tuple(t.shape)}")


def check_labels(name: str, labels, shape: tuple, k: int, check_range: bool, device=None) -> None:
    """Raises for labels of the wrong type, dtype, shape, device (when given) or (when
    check_range: a device sync) values. On CUDA the kernels leave a problem with a bad label out
    and its values are NaN (no sync, no out-of-bounds read); check_range, what `validate=True`
    buys, turns that into a ValueError."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(labels).__name__}")
    if labels.dtype != torch.int64:
        raise TypeError(f"{name} must be int64; got {labels.dtype}")
    if device is not None and labels.device != device:
        raise ValueError(f"{name} must be on the features' device ({device}); got {labels.device}")
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {tuple(labels.shape)}")
    if check_range and labels.numel() and not bool(((labels >= 0) & (labels < k)).all()):
        raise ValueError(f"{name} must hold values in [0, {k})")


def check_dse_arguments(feats, local_k, global_k, group, normalize, iters, tol, n_init, seeding, seed,
                        local_labels, global_labels, check_range: bool) -> None:
    """Validates everything `dse` receives (SPEC "Edge cases"), before any work."""
    check_float_tensor("feats", feats, 3)
    B, N, d = feats.shape
    if B < 1:
        raise ValueError(f"feats must hold at least one image (B >= 1); got shape {tuple(feats.shape)}")
    if d < 1:
        raise ValueError(f"feats must have at least one channel (d >= 1); got shape {tuple(feats.shape)}")
    _check_int("local_k", local_k, 1)
    _check_int("global_k", global_k, 1)
    _check_int("group", group, 1)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool; got {type(normalize).__name__}")
    check_kmeans_options(max(local_k, global_k), iters, tol, n_init, seeding, seed)
    if N < 2 * local_k:
        raise ValueError(f"feats has N = {N} patches per image; local_k = {local_k} needs N >= 2 * local_k")
    groups = -(-B // group)
    last = (B - (groups - 1) * group) * N
    if last < 2 * global_k:
        raise ValueError(f"the last group of images holds {last} patches; global_k = {global_k} needs >= "
                         f"2 * global_k patches in every group (B = {B}, group = {group}, N = {N})")
    if local_labels is not None:
        check_labels("local_labels", local_labels, (B, N), local_k, check_range, device=feats.device)
    if global_labels is not None:
        check_labels("global_labels", global_labels, (groups, group * N), global_k, False, device=feats.device)
        if check_range:
            for g in range(groups):
                used = global_labels[g, : min(group, B - g * group) * N]
                check_labels("global_labels", used, tuple(used.shape), global_k, True)
