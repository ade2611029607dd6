"""The continuous-target AP loss (CoTAP's ranking loss) as the op torch.ops.sdd.continuous_ap_loss.

For each anchor, candidates j carry a teacher similarity t_j (the continuous target) and a
student score s_j:

    w_j  = c_j * max(t_j - theta, 0)                      c_j: weight_scale (e.g. alpha for
                                                          candidates from other images)
    P_j  = #{k : t_k >= t_j and s_k >= s_j}               (j included; a count, no gradient)
    N_j  = lam * sum_k max(t_j - t_k, 0) * phi(s_j - s_k)
    loss = sum_j w_j * N_j / (P_j + N_j) / sum_j w_j      (0 for an anchor without weight)

phi is the smoothed step (1 - min(x, tau) / tau)^2 for x >= 0 and 1 - 2 x / tau for x < 0; with
`hard_step=True` it is [x <= 0], and for binary targets, theta = 0 and lam = 1 the loss is then
1 - AP (average precision of the scores). With reduction="mean" the result is the mean over
the anchors that have weight.

Provenance: these formulas follow the issue's summary of arXiv 2509.09429 (CoTAP); neither the
paper's method section nor its code could be read here, so they are not checked against them,
and the defaults below (theta, lam, tau) are our choices, tested on the bundled data, not the
paper's values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .library import assert_has_ops, has_ops
from .options import check_float_tensor, compute_dtype

ALGORITHMS = ("auto", "pairwise", "sorted")
REDUCTIONS = ("mean", "none")


@dataclass(frozen=True)
class APLossDefaults:
    """Defaults of continuous_ap_loss (chosen here; see the module docstring)."""

    theta: float = 0.5  # targets at or under theta carry no weight
    lam: float = 1.0  # weight of the ranking-error mass N_j
    tau: float = 0.1  # width of the smoothed step, in score units (cosine similarities)


AP_DEFAULTS = APLossDefaults()


def check_ap_loss_inputs(scores, targets, weight_scale, theta, lam, tau, algorithm, reduction) -> None:
    """ValueError / TypeError naming the first bad argument (as the C++ checks do)."""
    check_float_tensor("scores", scores, 2)
    check_float_tensor("targets", targets, 2)
    if targets.shape != scores.shape:
        raise ValueError(f"targets must have the shape of scores {list(scores.shape)}; got {list(targets.shape)}")
    if targets.device != scores.device:
        raise ValueError(f"targets must be on the same device as scores ({scores.device}); got {targets.device}")
    if scores.shape[1] < 1:
        raise ValueError(f"scores must have at least one candidate per anchor; got shape {list(scores.shape)}")
    if weight_scale is not None:
        check_float_tensor("weight_scale", weight_scale, 2)
        if weight_scale.shape != scores.shape:
            raise ValueError(f"weight_scale must have the shape of scores {list(scores.shape)}; "
                             f"got {list(weight_scale.shape)}")
        if weight_scale.device != scores.device:
            raise ValueError(f"weight_scale must be on the same device as scores ({scores.device}); "
                             f"got {weight_scale.device}")
    for name, value, ok, rule in (("theta", theta, True, "finite"), ("lam", lam, lam >= 0, "finite and >= 0"),
                                  ("tau", tau, tau > 0, "finite and > 0")):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{name} must be a number; got {type(value).__name__}")
        if not (ok and abs(value) < float("inf")):
            raise ValueError(f"{name} must be {rule}; got {value:g}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}; got {algorithm!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")


def continuous_ap_loss(scores: torch.Tensor, targets: torch.Tensor, weight_scale: torch.Tensor | None = None, *,
                       theta: float = AP_DEFAULTS.theta, lam: float = AP_DEFAULTS.lam, tau: float = AP_DEFAULTS.tau,
                       hard_step: bool = False, algorithm: str = "auto", reduction: str = "mean",
                       backend: str = "ops") -> torch.Tensor:
    """Continuous-target AP loss of student `scores` against teacher `targets` (module docstring).

    Args:
        scores (Tensor[A, C]): student scores of C candidates for each of A anchors (gradient flows).
        targets (Tensor[A, C]): teacher similarities (continuous targets; no gradient).
        weight_scale (Tensor[A, C], optional): multiplies each candidate's weight w_j (for example
            alpha = 0.1 for candidates from other images); it does not change P_j or N_j.
        theta, lam, tau: see the module docstring.
        hard_step (bool): phi(x) = [x <= 0] (an evaluation: 1 - AP for binary targets; no gradient).
        algorithm: "pairwise" (O(C^2) per anchor), "sorted" (O(C log C), CPU) or "auto" (sorted for
            long lists on the CPU); the values agree to rounding.
        reduction: "mean" (over anchors with weight; a 0-d tensor) or "none" ([A]).
        backend: "ops" (compiled kernels) or "reference" (float64 PyTorch, slow).

    Returns:
        Tensor in the compute dtype of `scores` (fp64 stays fp64, else fp32); no host sync.
    """
    check_ap_loss_inputs(scores, targets, weight_scale, theta, lam, tau, algorithm, reduction)
    theta, lam, tau = float(theta), float(lam), float(tau)
    if backend == "ops":
        assert_has_ops()
        per_anchor = torch.ops.sdd.continuous_ap_loss(scores, targets, weight_scale, theta, lam, tau, hard_step,
                                                      algorithm)
    elif backend == "reference":
        from .reference import continuous_ap_loss as reference_loss

        per_anchor = reference_loss(scores, targets, weight_scale, theta=theta, lam=lam, tau=tau,
                                    hard_step=hard_step).to(compute_dtype(scores))
    else:
        raise ValueError(f"backend must be 'ops' or 'reference'; got {backend!r}")
    if reduction == "none":
        return per_anchor
    scale = torch.ones_like(targets) if weight_scale is None else weight_scale
    weighted = ((targets.detach() - theta).clamp_min(0) * scale.detach()).sum(1) != 0  # [A]
    return (per_anchor * weighted).sum() / weighted.sum().clamp_min(1)


def _register_fakes() -> None:
    @torch.library.register_fake("sdd::continuous_ap_loss")
    def _(scores, targets, weight_scale, theta, lam, tau, hard_step, algorithm):
        return scores.new_empty((scores.shape[0],), dtype=compute_dtype(scores))

    @torch.library.register_fake("sdd::continuous_ap_loss_backward")
    def _(grad, scores, targets, weight_scale, theta, lam, tau, hard_step, algorithm):
        return torch.empty_like(scores)


if has_ops():
    _register_fakes()
