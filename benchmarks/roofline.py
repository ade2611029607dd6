"""The floating-point work of one `dse` call, counted from its shapes, its cluster sizes and the
Lloyd iterations the CPU kernels actually ran (`sdd_fast._C.work_counters`), for the roofline:
roofline time = fp32 flops / fp32 GEMM peak + fp64 flops / fp64 GEMM peak, both peaks measured
in the same benchmark run (test_bench_roofline.py).

Counted (GEMM-class work; elementwise passes over the features are left out, so the roofline is
a lower bound):
- k-means seeding (greedy k-means++: 2 + floor(ln k) candidates per step, the distances of all
  points to each, as the full loop takes them; the kernel prunes pairs, see `seeding_computed`),
  Lloyd assignments as plain Lloyd does them (all M x k distances per pass, 2 d flops each; the
  bound-based kernel evaluates fewer, see `distances_computed`), centroid sums (M d per update),
  M_inter's distances; in the compute dtype (fp32 for fp32 features);
- per cluster of n >= 2 points and per M_dim matrix [B, d], in fp64: the smaller Gram as a full
  product (2 m^2 c for m = min(rows, d), c = max(rows, d); the kernels form only its lower
  triangle when rows <= d) and its eigenvalues (4/3 m^3, the tridiagonal reduction);
- backward, on top of the forward: what a backward needs when the forward keeps its spectra
  (the eigenvectors: the back-transformation, 2 m^3), K = U diag(w) U^T (2 m^3) and K A
  (2 m^2 c) per matrix, M_inter's gradient (4 M d); the Grams are not counted twice.
"""

from __future__ import annotations

import math

import torch


def _seeding_flops(problems: int, M: int, k: int, d: int, runs_per_problem: float) -> float:
    candidates = 2 + int(math.log(k)) if k > 1 else 1
    return problems * runs_per_problem * (k - 1) * candidates * 2.0 * M * d


def _spectral(rows: int, d: int) -> tuple:
    """(gram, eigenvalues, backward extra) flops of one matrix [rows, d]."""
    m, c = min(rows, d), max(rows, d)
    return 2.0 * m * m * c, 4.0 / 3.0 * m ** 3, 2.0 * m ** 3 + 2.0 * m ** 3 + 2.0 * m * m * c


def dse_flops(feats: torch.Tensor, counters: dict, local_labels: torch.Tensor, global_labels: torch.Tensor,
              local_k: int = 3, global_k: int = 24, group: int = 8) -> dict:
    """{"forward": {"fp32": f, "fp64": f}, "forward+backward": {...}} for one dse call on feats
    [B, N, d] whose k-means did `counters` (read right after that call alone, reset before it)."""
    B, N, d = feats.shape
    G = -(-B // group)
    compute = "fp64" if feats.dtype == torch.float64 else "fp32"
    problems = B + G
    runs = counters["kmeans_runs"] / problems if problems else 1.0
    kmeans = (_seeding_flops(B, N, local_k, d, runs) + _seeding_flops(G, group * N, global_k, d, runs)
              + 2.0 * d * counters["distances_full"] + d * counters["lloyd_point_iterations"])
    inter = 2.0 * B * N * global_k * d
    gram = eig = extra = 0.0
    for labels, k in ((local_labels, local_k), (global_labels, global_k)):
        counts = torch.stack([torch.bincount(row[row >= 0], minlength=k) for row in labels.cpu()])
        for n in counts.flatten().tolist():
            if n >= 2:
                g, e, x = _spectral(int(n), d)
                gram, eig, extra = gram + g, eig + e, extra + x
    g, e, x = _spectral(B, d)
    gram, eig, extra = gram + N * g, eig + N * e, extra + N * x
    forward = {"fp32": 0.0, "fp64": gram + eig}
    forward[compute] += kmeans + inter
    backward = {"fp32": 0.0, "fp64": extra}
    backward[compute] += 4.0 * B * N * d
    return {"forward": forward,
            "forward+backward": {key: forward[key] + backward[key] for key in ("fp32", "fp64")}}


def roofline_ms(flops: dict, peaks: dict) -> float:
    """Milliseconds at the GEMM peaks {"fp32": GFLOP/s, "fp64": GFLOP/s}."""
    return sum(flops[key] / (peaks[key] * 1e9) for key in ("fp32", "fp64")) * 1e3


def count_dse(feats: torch.Tensor) -> dict:
    """Runs one dse forward on feats (CPU) with fresh work counters; returns
    {"flops": dse_flops(...), "counters": the counters}."""
    from sdd_fast import _C

    _C.work_counters(True)
    out = torch.ops.sdd.dse_forward(feats, 3, 24, 8, True, 20, 1e-4, 1, "greedy", 0, None, None)
    counters = dict(_C.work_counters(True))
    return {"flops": dse_flops(feats, counters, out[1], out[2]), "counters": counters}
