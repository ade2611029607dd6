"""The package version and the local tag of a build: `0.1.0+pt2141cu130` is sdd-fast 0.1.0
built against torch 2.14.1 with CUDA 13.0, `+pt2141cpu` a CPU-only build.

Imports nothing: setup.py loads this file by path (before torch's extension is built)."""

from __future__ import annotations

from typing import Optional

BASE_VERSION = "0.1.0"


def torch_release(torch_version: str) -> str:
    """"2.14.1" of "2.14.1+cu130": the part that fixes torch's C++ ABI."""
    return torch_version.split("+", 1)[0]


def cuda_major_minor(cuda_version: Optional[str]) -> Optional[str]:
    """"13.0" of "13.0" or "13.0.88"; None for None (no CUDA)."""
    return None if cuda_version is None else ".".join(str(cuda_version).split(".")[:2])


def local_tag(torch_version: str, cuda_version: Optional[str]) -> str:
    """"pt2141cu130" for torch 2.14.1 and CUDA 13.0, "pt2141cpu" for cuda_version None."""
    torch_part = "pt" + torch_release(torch_version).replace(".", "")
    cuda = cuda_major_minor(cuda_version)
    return torch_part + ("cpu" if cuda is None else "cu" + cuda.replace(".", ""))


def build_version(torch_version: str, cuda_version: Optional[str]) -> str:
    """The version of a build: BASE_VERSION + "+" + local_tag(...)."""
    return f"{BASE_VERSION}+{local_tag(torch_version, cuda_version)}"
