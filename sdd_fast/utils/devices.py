"""The one rule for a missing device argument: CUDA when DSE can run there, else the CPU.

DSE work goes to CUDA by default only when a GPU is visible (torch.cuda.is_available()) AND the
loaded sdd_fast library has a CUDA kernel for every op (sdd_fast.has_cuda(), asked of the
dispatcher). A GPU with a CPU-only or partial build therefore defaults to the CPU instead of
failing at the first DSE call; sdd_fast.missing_cuda_kernels() says what is missing.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..core.library import has_ops, missing_cuda_kernels


def cuda_unavailable_reason() -> Optional[str]:
    """Why DSE work cannot run on CUDA here, or None when it can."""
    if not torch.cuda.is_available():
        return "no CUDA GPU is available"
    if not has_ops():
        return "sdd_fast's compiled library is not loaded"
    missing = missing_cuda_kernels()
    if missing:
        return (f"sdd_fast has no CUDA kernel for {', '.join(missing)} (rebuild it on a machine with nvcc: "
                "`make build REBUILD=1 SDD_FORCE_CUDA=1`)")
    return None


def default_device(name=None) -> torch.device:
    """torch.device(name); when `name` is None, cuda if DSE can run there (a GPU is available and
    sdd_fast.has_cuda()), else cpu (see cuda_unavailable_reason())."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if cuda_unavailable_reason() is None else "cpu")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else platform's best guess."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device=None) -> dict:
    """What a result was measured on: CPU model and threads, torch version, GPU name if used."""
    device = default_device(device)
    return {"cpu": cpu_model(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
