"""Loads the compiled library sdd_fast._C (which registers torch.ops.sdd) and reports on it."""

from __future__ import annotations

import warnings

import torch

_BUILD_HINT = (
    "Build it from the repository root with `make build` (or "
    "`pip install --no-build-isolation -e .`), or pass backend='reference' to use the "
    "plain-PyTorch implementation."
)

try:
    from . import _C  # noqa: F401  (importing registers the ops)

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


def has_cuda() -> bool:
    """True when the CUDA kernels were compiled into the loaded library."""
    return _C is not None and bool(_C.has_cuda())


def has_openmp() -> bool:
    """True when the loaded CPU kernels split their work over torch's intra-op (OpenMP) threads;
    False: they run on the calling thread only."""
    return _C is not None and bool(_C.has_openmp())


def cuda_version() -> int:
    """CUDA version the library was built with (e.g. 13000), or -1 (CPU-only build or not loaded)."""
    return int(_C.cuda_version()) if _C is not None else -1


def _check_cuda_match() -> None:
    if not has_cuda() or torch.version.cuda is None:
        return
    major, minor = (int(p) for p in torch.version.cuda.split(".")[:2])
    built = cuda_version()
    if (built // 1000, (built % 1000) // 10) != (major, minor):
        warnings.warn(f"sdd_fast was built with CUDA {built // 1000}.{(built % 1000) // 10} but torch uses "
                      f"CUDA {torch.version.cuda}; rebuild sdd_fast if the CUDA kernels fail.", stacklevel=2)


_check_cuda_match()
