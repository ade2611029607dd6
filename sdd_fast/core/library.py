"""Loads the compiled library sdd_fast._C (which registers torch.ops.sdd) and reports on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from .._version import cuda_major_minor, local_tag, torch_release

_BUILD_HINT = (
    "Build it from the repository root with `make build` (or "
    "`pip install --no-build-isolation -e .`), or pass backend='reference' to use the "
    "plain-PyTorch implementation."
)

BUILD_INFO = Path(__file__).resolve().parent.parent / "_build_info.json"  # written by setup.py


def built_for() -> Optional[dict]:
    """{"torch": version, "cuda": version or None} the compiled library was built for, or None
    when there is no build record (not built)."""
    try:
        return json.loads(BUILD_INFO.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_build_matches(info: Optional[dict], torch_version: str = torch.__version__,
                        torch_cuda: Optional[str] = torch.version.cuda) -> None:
    """ImportError naming both builds, and the wheel to install, when the library was built for
    another torch release (its C++ ABI differs: loading it would fail with an undefined symbol, or
    worse) or with CUDA kernels for another CUDA than torch's (or for a CPU-only torch). A CPU-only
    build loads under any CUDA of the same torch release."""
    if info is None:
        return
    built_cuda = cuda_major_minor(info.get("cuda"))
    same_torch = torch_release(info["torch"]) == torch_release(torch_version)
    if same_torch and built_cuda in (None, cuda_major_minor(torch_cuda)):
        return
    wanted = local_tag(torch_version, torch_cuda)
    raise ImportError(
        f"sdd_fast was built for torch {info['torch']} with {_cuda_words(built_cuda)} but this environment has "
        f"torch {torch_version} with {_cuda_words(cuda_major_minor(torch_cuda))}: install the sdd-fast wheel "
        f"for this torch, tagged +{wanted} (`pip install --find-links WHEEL_DIR 'sdd-fast==VERSION+{wanted}'`; "
        f"the wheels are named sdd_fast-VERSION+{wanted}-...whl), or rebuild it here (`make build`, or "
        "`pip install --no-build-isolation -e .`)")


def _cuda_words(cuda: Optional[str]) -> str:
    return "no CUDA" if cuda is None else f"CUDA {cuda}"


check_build_matches(built_for())

try:
    from .. import _C  # noqa: F401  (importing registers the ops)

    _LOAD_ERROR: Exception | None = None
except ImportError as error:  # not built, or built against another torch
    _C = None
    _LOAD_ERROR = error


def has_ops() -> bool:
    """True when the compiled library is loaded and torch.ops.sdd is usable."""
    return _C is not None


def assert_has_ops() -> None:
    """Raises RuntimeError saying how to build the library when it is not loaded."""
    if _C is None:
        raise RuntimeError(f"sdd_fast's compiled library is not available ({_LOAD_ERROR}). {_BUILD_HINT}")


# Every op of the `sdd` namespace that needs a kernel per device (`sdd::dse` is
# CompositeImplicitAutograd: it runs wherever these run). Stated once: has_cuda(), the tests and
# the GPU check all read it.
KERNEL_OPS = ("kmeans", "cluster_singular_sum", "cluster_singular_sum_backward", "effective_rank",
              "effective_rank_backward", "inter_cluster_distance", "inter_cluster_distance_backward",
              "dse_forward", "dse_backward", "continuous_ap_loss", "continuous_ap_loss_backward")


def _has_kernel(op: str, dispatch_key: str) -> bool:
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"sdd::{op}", dispatch_key))
    except RuntimeError:  # the schema itself is not registered (an older or partial library)
        return False


def missing_cuda_kernels() -> list:
    """The ops of KERNEL_OPS without a CUDA kernel in the dispatcher (all of them when the
    library is not loaded); empty when every op can run on CUDA tensors."""
    if _C is None:
        return list(KERNEL_OPS)
    return [op for op in KERNEL_OPS if not _has_kernel(op, "CUDA")]


def has_cuda() -> bool:
    """True when the library is loaded and every op of KERNEL_OPS has a CUDA kernel.

    Asked of the dispatcher, not of the build: a library compiled with nvcc may still lack a
    kernel (see missing_cuda_kernels()), and DSE work must not be sent to a device on the strength
    of a build flag. Says nothing about a GPU being present (torch.cuda.is_available())."""
    return _C is not None and not missing_cuda_kernels()


def has_openmp() -> bool:
    """True when the loaded CPU kernels split their work over torch's intra-op (OpenMP) threads;
    False: they run on the calling thread only."""
    return _C is not None and bool(_C.has_openmp())


def cuda_version() -> int:
    """CUDA version the library was built with (e.g. 13000), or -1 (CPU-only build or not loaded)."""
    return int(_C.cuda_version()) if _C is not None else -1
