"""Builds and loads the CPU block emulator's op library (torch.ops.sdd_emu.*, test only).

The library runs the CUDA kernels' bodies (csrc/kernels/) on the CPU, one std::thread per
CUDA thread (csrc/emulator/emulator.h), with the same schemas as torch.ops.sdd. It is built
on first use with torch.utils.cpp_extension into build/emulator/ (ninja: only changed sources
recompile; ccache is used when on PATH).
"""

from __future__ import annotations

import functools
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = [os.path.join(ROOT, "csrc", "emulator", "emulator_ops.cpp")] + [
    os.path.join(ROOT, "csrc", "inputs", name) for name in ("options.cpp", "features.cpp", "ap_loss.cpp")]


@functools.lru_cache(maxsize=None)
def load() -> None:
    """Builds (when a source changed) and loads the emulator library; registers torch.ops.sdd_emu."""
    from torch.utils import cpp_extension

    build_dir = os.path.join(ROOT, "build", "emulator")
    os.makedirs(build_dir, exist_ok=True)
    cpp_extension.load(name="sdd_emu", sources=SOURCES, extra_include_paths=[os.path.join(ROOT, "csrc")],
                       extra_cflags=["-O2", "-std=c++20", "-fvisibility=hidden"], build_directory=build_dir,
                       is_python_module=False, verbose=bool(os.environ.get("SDD_EMU_VERBOSE")),
                       extra_ldflags=[], with_cuda=False, keep_intermediates=True,
                       )


def ops():
    """torch.ops.sdd_emu, loaded."""
    load()
    return torch.ops.sdd_emu
