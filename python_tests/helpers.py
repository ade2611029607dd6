"""Test data with known structure and comparison helpers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest
import torch

import sdd_fast


def clustered_feats(images: int = 8, classes: int = 3, patches: int = 48, dim: int = 64, noise: float = 0.01,
                    seed: int = 0, dtype=torch.float32):
    """Features with `images * classes` clear clusters: every image has `classes` classes of
    its own (unequal sizes), patches = class centre + small noise.

    Returns feats [images, patches, dim] and true labels [images, patches] (global ids).
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(images * classes, dim, generator=g, dtype=torch.float64), dim=1)
    sizes = torch.tensor([patches // classes + (c - classes // 2) * max(1, patches // (4 * classes))
                          for c in range(classes)])
    sizes[-1] += patches - int(sizes.sum())
    local = torch.repeat_interleave(torch.arange(classes), sizes)  # [patches]
    labels = torch.stack([local[torch.randperm(patches, generator=g)] + i * classes for i in range(images)])
    feats = centres[labels] + noise * torch.randn(images, patches, dim, generator=g, dtype=torch.float64)
    return feats.to(dtype), labels


def same_partition(found: torch.Tensor, truth: torch.Tensor) -> bool:
    """True when two labellings of the same points define the same partition."""
    found, truth = found.reshape(-1), truth.reshape(-1)
    pairs = torch.unique(found * (int(truth.max()) + 1) + truth).numel()
    return pairs == torch.unique(found).numel() == torch.unique(truth).numel()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(|b|, tiny), elementwise max (b is the reference)."""
    a, b = a.double().cpu(), b.double().cpu()
    return float(((a - b).abs() / b.abs().clamp_min(1e-12)).max())


def dse_labels(feats: torch.Tensor, **options):
    """The labels and permutation the compiled dse used (its forward's constants)."""
    opts = dict(local_k=3, global_k=24, group=8, normalize=True, iters=20, tol=1e-4, n_init=1, seeding="greedy",
                seed=0)
    opts.update(options)
    _, local, glob, _, _, perm = torch.ops.sdd.dse_forward(feats, *opts.values(), None, None)
    return local, glob, perm


def call_dse(feats, **options):
    """sdd_fast.dse(...) as a [5] tensor."""
    return torch.stack(list(sdd_fast.dse(feats, **options)))


def norm_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| (b is the reference): the measure for gradients."""
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def run_on_lane_copy(script: str, lanes: int) -> bool:
    """Runs `script` in a fresh interpreter on the eigensolver copy of `lanes` lanes (SDD_CPU_LANES;
    python_tests on its path). The script prints the lanes it ran on and True / False; skips when
    this CPU has no such copy, else returns the verdict."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "SDD_CPU_LANES": str(lanes),
           "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    used, ok = out.stdout.split()
    if int(used) != lanes:
        assert int(used) < lanes, "a wider copy than asked for"
        pytest.skip(f"this CPU has no {lanes}-lane copy (got {used})")
    return ok == "True"


@contextlib.contextmanager
def plain_lloyd():
    """The CPU k-means without its bounds (every distance, every seeding product) inside the block."""
    previous = sdd_fast._C.set_plain_lloyd(True)
    try:
        yield
    finally:
        sdd_fast._C.set_plain_lloyd(previous)
