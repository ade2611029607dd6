"""Where the time of one dse forward + backward goes on a GPU: device time per kernel.

    python benchmarks/gpu_profile.py [--size B N d]

Runs torch.profiler over a few forward + backward calls (after warm-up) on embedded structured
features and prints the kernels sorted by total device time, then the per-call wall time from
CUDA events. Used to decide what to speed up; `make gpu-check` runs it.
"""

from __future__ import annotations

import argparse

import torch

import sdd_fast
from sdd_fast.core.synthetic import structured_feats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=3, default=(64, 196, 384), metavar=("B", "N", "d"))
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    B, N, d = args.size
    feats = structured_feats(B, N, d).cuda().requires_grad_()

    def step():
        values = torch.stack(list(sdd_fast.dse(feats)))
        values.sum().backward()

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.calls):
            step()
        torch.cuda.synchronize()
    print(f"dse forward + backward at B={B} N={N} d={d}, {args.calls} calls:")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for label, fn in (("forward", lambda: sdd_fast.dse(feats.detach())), ("forward+backward", step)):
        start.record()
        for _ in range(args.calls):
            fn()
        end.record()
        torch.cuda.synchronize()
        print(f"{label}: {start.elapsed_time(end) / args.calls:.2f} ms per call")


if __name__ == "__main__":
    main()
