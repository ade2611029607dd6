"""DSERegularizer: a term that rewards dense structure, for any training loop.

    regularizer = sdd_fast.DSERegularizer(beta=1e-3)
    loss = ssl_loss + regularizer(patch_tokens)      # patch_tokens [B, N, d], with gradient
"""

from __future__ import annotations

from typing import Optional

import torch

from ..core.estimator import DSEResult, check_shape, dse


class DSERegularizer(torch.nn.Module):
    """Returns -beta * DSE(feats): minimising the loss then maximises dense structure.

    Gradients flow through the op to the features (cluster labels and centroids are
    constants of each call, SPEC "Gradient").

    Args:
        beta (float): weight of the term (>= 0; 0 returns a zero that keeps the graph).
        **dse_options: keyword options of `sdd_fast.dse`.
    """

    def __init__(self, beta: float, **dse_options):
        super().__init__()
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0; got {beta}")
        self.beta = float(beta)
        self.dse_options = dse_options
        self.last: Optional[DSEResult] = None  # detached components of the latest call

    def check_shape(self, shape: tuple) -> None:
        """ValueError when student patch tokens of `shape` [B, N, d] cannot be regularised with
        these options; runs no kernel."""
        check_shape(shape, **self.dse_options)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats (Tensor[B, N, d]) -> 0-d loss term -beta * dse (in feats' compute dtype)."""
        if self.beta == 0:
            self.last = None
            return feats.sum() * 0.0
        result = dse(feats, **self.dse_options)
        self.last = DSEResult(*(v.detach() for v in result))
        return -self.beta * result.dse
