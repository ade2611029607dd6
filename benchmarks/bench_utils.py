"""Shared pieces of the benchmark suite: mode (full / short), size grids, rounds, the
implementations under test and a timing helper that synchronises CUDA.

`conftest.py` sets the mode (`--bench-short` or BENCH_SHORT=1) and the devices before the test
modules are collected, so the module-level grids below can be read at collection time.
"""

from __future__ import annotations

import os

import torch

import sdd_fast

# ---- mode -----------------------------------------------------------------------------------
SHORT = os.environ.get("BENCH_SHORT", "") not in ("", "0", "false", "no")
THREADS = 2  # the CPU targets are stated for 2 threads
HEADLINE = (64, 196, 384)  # B, N, d: ViT-S/16 at 224 px, a batch of 64
SMALL = (8, 196, 384)  # one group of images: the size the slow baselines run at in short mode
# Short mode on a GPU (`make gpu-check`) also measures these: a GPU call takes milliseconds, and the
# GPU targets ask for B=256 and d=768 too. On the CPU they would take tens of seconds: skipped there.
CUDA_SHORT_EXTRA = [(256, 196, 384), (64, 196, 768)]
DEVICES = ["cpu"]  # the benchmarked devices, set by conftest before collection


def configure(short: bool) -> None:
    """Called by conftest.pytest_configure before collection."""
    global SHORT
    SHORT = bool(short)


def set_devices(devices: list) -> None:
    """Called by conftest.pytest_configure (before collection): the grids below depend on them."""
    DEVICES[:] = list(devices)


def _short_extra() -> list:
    return CUDA_SHORT_EXTRA if "cuda" in DEVICES else []


def skip_unless_measured(device: str, size: tuple) -> None:
    """In short mode the CUDA-only sizes are skipped on the CPU (in a run benchmarking both)."""
    if SHORT and device != "cuda" and tuple(size) in CUDA_SHORT_EXTRA:
        import pytest

        pytest.skip("short mode: B=256 and d=768 are measured on cuda only")


def available_devices() -> list:
    """cpu, and cuda when a GPU is visible and sdd_fast was built with its CUDA kernels."""
    devices = ["cpu"]
    if torch.cuda.is_available() and sdd_fast.has_cuda():
        devices.append("cuda")
    return devices


# ---- size grids (B, N, d) -----------------------------------------------------------------
# Full mode: B scaling at N=196, d=384; N scaling at B=64, d=384; d scaling at the headline.
_DSE_FULL = [(8, 196, 384), (64, 196, 384), (256, 196, 384), (64, 49, 384), (64, 98, 384), (64, 196, 768)]
# Slow baselines (seconds per call): B=256 is left out, its cost is ~4x that of B=64 (tens of
# seconds per call for the reference and the published structure); the B growth is shown by 8 -> 64.
_SLOW_FULL = [(8, 196, 384), (64, 196, 384), (64, 49, 384), (64, 98, 384)]
SKIPPED_NOTE = ("The reference and published-structure baselines are not run at B=256 (a call "
                "takes tens of seconds there; their growth with B is shown by B=8 -> 64), and "
                "their forward+backward only at the headline size.")


def dse_sizes() -> list:
    return _DSE_FULL if not SHORT else [SMALL, HEADLINE] + _short_extra()


def _slow_baselines_left_out() -> bool:
    """Short mode on a GPU alone (`make gpu-check`): the reference and published structure take
    seconds per call there too (host loops and syncs), more than the 8-minute check can spend."""
    return SHORT and DEVICES == ["cuda"]


def baseline_sizes(impl: str) -> list:
    """Forward sizes of each baseline."""
    if impl == "torch-batched":
        return _DSE_FULL if not SHORT else [SMALL, HEADLINE] + _short_extra()
    if _slow_baselines_left_out():
        return []
    return _SLOW_FULL if not SHORT else [SMALL]


def baseline_backward_sizes(impl: str) -> list:
    if impl != TARGET_BASELINE and _slow_baselines_left_out():
        return []
    if SHORT:
        # the GPU's forward+backward speed-up target is at the headline size
        return [SMALL, HEADLINE] if impl == TARGET_BASELINE and "cuda" in DEVICES else [SMALL]
    return [HEADLINE]


def memory_size() -> tuple:
    return SMALL if SHORT else HEADLINE


def rounds(kind: str, device: str) -> tuple:
    """(rounds, warmup_rounds) for a benchmark kind on a device."""
    table = {
        # kind:          cpu full, cuda full
        "dse": ((7, 1), (50, 5)),
        "dse-large": ((3, 1), (20, 3)),
        "op": ((10, 2), (100, 10)),
        "torch-batched": ((3, 1), (5, 1)),
        "reference": ((1, 0), (1, 0)),
        "published": ((3, 1), (1, 0)),  # a warm-up round, as sdd_fast and torch-batched get
    }
    full = table[kind][0 if device == "cpu" else 1]
    if SHORT and device == "cuda":
        # a few rounds for a median within `make gpu-check`'s 8 minutes (a dse call at B=256 can
        # take a second); the slow baselines (seconds per call, host syncs) stay at one round
        short_cuda = {"dse": (10, 2), "dse-large": (5, 1), "op": (20, 3), "torch-batched": (5, 1)}
        return short_cuda.get(kind, (1, 0))
    if SHORT:
        return (min(full[0], 2), min(full[1], 1)) if kind in ("dse", "dse-large", "op") else (1, 0)
    return full


# ---- implementations ------------------------------------------------------------------------
IMPLS = ("sdd_fast", "torch-batched", "reference", "published")
BASELINES = ("torch-batched", "reference", "published")
# The "plain-PyTorch baseline" of the speed-up targets: the vectorized one.
TARGET_BASELINE = "torch-batched"


def dse_values(impl: str, x: torch.Tensor, differentiable: bool) -> torch.Tensor:
    """[5] = [dse, inter, intra_image, intra_batch, dim] of x by one implementation."""
    if impl == "sdd_fast":
        return torch.stack(tuple(sdd_fast.dse(x)))
    if impl == "reference":
        return torch.stack(tuple(sdd_fast.dse(x, backend="reference")))
    if impl == "torch-batched":
        import torch_baseline

        return torch_baseline.dse(x)
    if impl == "published":
        import published_baseline

        return published_baseline.dse(x, differentiable=differentiable)
    raise ValueError(f"unknown implementation {impl!r}")


def make_call(impl: str, feats: torch.Tensor, backward: bool):
    """A zero-argument callable running one forward (or forward+backward) of `impl` on feats;
    it returns the five values (detached)."""
    if not backward:
        def forward():
            with torch.no_grad():
                return dse_values(impl, feats, differentiable=False)
        return forward
    x = feats.detach().clone().requires_grad_()

    def forward_backward():
        x.grad = None
        values = dse_values(impl, x, differentiable=True)
        values[0].backward()
        return values.detach()
    return forward_backward


def synced(fn, device: str):
    """fn, followed by a CUDA synchronisation on cuda (so the timer sees the kernels' time)."""
    if device != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def measure(benchmark, fn, device: str, rounds_kind: str, **info):
    """Times fn with benchmark.pedantic (fixed rounds per `rounds_kind` and mode) and records
    `info` (kind, impl, pass, sizes, ...) in extra_info, which write_results.py reads."""
    n_rounds, warmup = rounds(rounds_kind, device)
    benchmark.extra_info.update(device=device, **info)
    return benchmark.pedantic(synced(fn, device), rounds=n_rounds, iterations=1, warmup_rounds=warmup)


def size_id(size: tuple) -> str:
    B, N, d = size
    return f"B{B}-N{N}-d{d}"
