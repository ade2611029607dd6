"""sdd-fast: the Dense representation Structure Estimator (DSE) as fast torch ops.

    import sdd_fast
    result = sdd_fast.dse(patch_tokens)          # patch_tokens: [B, N, d]
    print(result.to_dict())                      # dse, inter, intra_image, intra_batch, dim
"""

from ._version import BASE_VERSION, build_version
from .core import reference
from .core.ap_loss import AP_DEFAULTS, continuous_ap_loss
from .core.estimator import DSEResult, dse
from .core.library import assert_has_ops, built_for, cuda_version, has_cuda, has_openmp, has_ops, missing_cuda_kernels
from .core.ops import cluster_singular_sum, effective_rank, inter_cluster_distance, kmeans
from .core.options import DEFAULTS
from .integrations import loggers
from .integrations.alarm import DegradationAlarm
from .integrations.monitor import DSEMonitor
from .integrations.regularizer import DSERegularizer
from .selection.causal import CausalSelector
from .selection.checkpoints import select_checkpoints

_BUILT_FOR = built_for()
# e.g. 0.1.0+pt2141cu130: built against torch 2.14.1 with CUDA 13.0 (the wheel's local version)
__version__ = build_version(_BUILT_FOR["torch"], _BUILT_FOR["cuda"]) if _BUILT_FOR else BASE_VERSION

__all__ = [
    "AP_DEFAULTS",
    "continuous_ap_loss",
    "DEFAULTS",
    "CausalSelector",
    "DegradationAlarm",
    "DSEMonitor",
    "DSERegularizer",
    "DSEResult",
    "assert_has_ops",
    "cluster_singular_sum",
    "cuda_version",
    "dse",
    "effective_rank",
    "has_cuda",
    "has_openmp",
    "has_ops",
    "inter_cluster_distance",
    "kmeans",
    "loggers",
    "missing_cuda_kernels",
    "reference",
    "select_checkpoints",
]
