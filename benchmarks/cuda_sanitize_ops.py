"""Every sdd op, forward and backward, once per input dtype on small inputs: the program that
`make gpu-check` runs under compute-sanitizer (memcheck, racecheck, synccheck).

    compute-sanitizer --tool memcheck python benchmarks/cuda_sanitize_ops.py [--device cuda]
    python benchmarks/cuda_sanitize_ops.py --device cpu      # the same calls on CPU tensors

B=4 images of N=32 patches, d=48 channels, local_k=3, global_k=6, group=2: every kernel runs
(a smaller last group and caller-given labels included) but takes microseconds, so the
sanitizers' 10-100x slowdown stays in seconds. Each call is followed by a synchronisation, so
that an error is reported next to the op that caused it. Exits 1 when an op of KERNEL_OPS was not
called (a new op must be added here) or produced a non-finite value.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import sdd_fast
from sdd_fast.core.library import KERNEL_OPS

B, N, D, LOCAL_K, GLOBAL_K, GROUP = 4, 32, 48, 3, 6, 2
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class Calls:
    """Runs ops, syncs after each, records which ops ran and whether their outputs were finite."""

    def __init__(self, device: torch.device):
        self.device, self.called, self.bad = device, set(), []

    def __call__(self, name: str, *args):
        out = getattr(torch.ops.sdd, name)(*args)
        if self.device.type == "cuda":
            torch.cuda.synchronize()  # a sanitizer report then points at this op
        self.called.add(name)
        floats = [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if t.is_floating_point()]
        if not all(bool(torch.isfinite(t).all()) for t in floats):
            self.bad.append(name)
        return out


def run_dtype(call: Calls, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    dev = call.device
    feats = torch.randn(B, N, D, generator=g).to(dev, dtype)
    x = torch.nn.functional.normalize(feats.float(), dim=-1).to(dtype)
    xg = x.reshape(B // GROUP, GROUP * N, D)

    # the building blocks, on the labels and centroids k-means gives
    _, local, _ = call("kmeans", x, LOCAL_K, 20, 1e-4, 1, "greedy", 0)
    centroids, glob, _ = call("kmeans", xg, GLOBAL_K, 20, 1e-4, 2, "d2", 1)  # n_init 2: the keep-best path
    for points, labels, k in ((x, local, LOCAL_K), (xg, glob, GLOBAL_K)):
        values, _ = call("cluster_singular_sum", points, labels, k)
        call("cluster_singular_sum_backward", torch.ones_like(values), points, labels, k)
    y = x.transpose(0, 1).contiguous()  # [N, B, D], as M_dim
    ranks = call("effective_rank", y)
    call("effective_rank_backward", torch.ones_like(ranks), y)
    centroids = centroids.to(dtype)
    distances = call("inter_cluster_distance", xg, centroids, glob)
    call("inter_cluster_distance_backward", torch.ones_like(distances), xg, centroids, glob)

    # the whole metric: own k-means with a smaller last group (B=3, group 2), then given labels
    for batch, given in ((B - 1, False), (B, True)):
        f = feats[:batch].contiguous()
        labels = (local[:batch], glob) if given else (None, None)
        fwd = call("dse_forward", f, LOCAL_K, GLOBAL_K, GROUP, True, 20, 1e-4, 1, "greedy", 0, *labels)
        call("dse_backward", torch.ones_like(fwd[0]), fwd[0], f, *fwd[1:], LOCAL_K, GLOBAL_K, GROUP, True)
    # the continuous-target AP loss: 300 candidates (two shared-memory tiles), anchor 2 without weight
    scores = (torch.rand(3, 300, generator=g) * 2 - 1).to(dev, dtype)
    targets = torch.rand(3, 300, generator=g).to(dev, dtype)
    targets[2] *= 0.2
    scale = torch.where(torch.rand(3, 300, generator=g) < 0.3, 0.1, 1.0).to(dev, dtype)
    losses = call("continuous_ap_loss", scores, targets, scale, 0.3, 1.0, 0.1, False, "auto")
    call("continuous_ap_loss_backward", torch.ones_like(losses), scores, targets, scale, 0.3, 1.0, 0.1, False, "auto")
    # and through autograd, as users call it
    f = feats.clone().requires_grad_()
    sdd_fast.dse(f, local_k=LOCAL_K, global_k=GLOBAL_K, group=GROUP).dse.backward()
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    args = parser.parse_args(argv)
    sdd_fast.assert_has_ops()
    call = Calls(torch.device(args.device))
    for dtype in DTYPES:
        start = time.perf_counter()
        run_dtype(call, dtype)
        print(f"cuda_sanitize_ops: {args.device} {str(dtype).replace('torch.', '')}: "
              f"{(time.perf_counter() - start) * 1e3:.0f} ms", flush=True)
    missing = sorted(set(KERNEL_OPS) - call.called)
    if missing or call.bad:
        print(f"cuda_sanitize_ops: FAILED: not called {missing}, non-finite outputs {sorted(set(call.bad))}")
        return 1
    print(f"cuda_sanitize_ops: every op of KERNEL_OPS ran on {args.device} in {len(DTYPES)} dtypes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
