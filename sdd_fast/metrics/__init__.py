"""Label-free baselines of representation quality, to compare DSE against.

    from sdd_fast.metrics import rankme, dense_rankme, alpha_req, lidar

Each takes embeddings (float tensors on any device), computes in float64 with `torch.linalg`
and returns a Python float. They score a representation as a whole; only DSE looks at the
dense structure (clusters of patch tokens) that segmentation needs.
"""

from .alpha_req import alpha_req, eigenspectrum
from .lidar import lidar
from .rankme import dense_rankme, rankme, spectral_effective_rank

__all__ = ["alpha_req", "dense_rankme", "eigenspectrum", "lidar", "rankme", "spectral_effective_rank"]
