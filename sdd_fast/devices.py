"""The one rule for a missing device argument: CUDA when available, else the CPU."""

from __future__ import annotations

import torch


def default_device(name=None) -> torch.device:
    """torch.device(name), or cuda when `name` is None and a GPU is available, else cpu."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
