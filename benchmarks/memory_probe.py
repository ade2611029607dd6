"""Peak memory of one DSE call (used by test_bench_memory.py).

CUDA: `torch.cuda.max_memory_allocated()` growth over the call, in the benchmark process.
CPU: growth of the process's peak resident set (VmHWM) over the call, in a fresh process
(`python memory_probe.py --impl ... --pass ... --size B N d` prints one JSON line), so memory
that the allocator kept from earlier benchmarks does not hide the call's own. The peak is
reset just before the call by writing 5 to /proc/self/clear_refs (Linux); where that is not
possible a thread samples VmRSS every millisecond instead (which can miss short peaks).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_utils import THREADS, make_call  # noqa: E402


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    return int(match.group(1)) if match else -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") <= _status_kib("VmRSS") + 64


class _Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = _status_kib("VmRSS"), False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, _status_kib("VmRSS"))
            time.sleep(0.001)


def cpu_peak(impl: str, pass_: str, feats: torch.Tensor) -> dict:
    """RSS peak growth (bytes) of one call in this process."""
    backward = pass_ == "forward+backward"
    tiny = feats[:8, :16, :].contiguous()
    make_call(impl, tiny, backward)()  # initialise libraries (LAPACK, OpenMP threads, ...)
    fn = make_call(impl, feats, backward)
    gc.collect()
    before = _status_kib("VmRSS")
    if _reset_peak():
        fn()
        peak, method = _status_kib("VmHWM"), "VmHWM after clear_refs"
    else:
        sampler = _Sampler()
        sampler.start()
        fn()
        sampler.stop = True
        sampler.join()
        peak, method = max(sampler.peak, _status_kib("VmRSS")), "VmRSS sampled every 1 ms"
    return {"peak_bytes": max(0, peak - before) * 1024, "method": method, "rss_before_bytes": before * 1024}


def cuda_peak(impl: str, pass_: str, feats: torch.Tensor) -> dict:
    """max_memory_allocated growth (bytes) of one call."""
    backward = pass_ == "forward+backward"
    make_call(impl, feats[:8, :16, :].contiguous(), backward)()
    fn = make_call(impl, feats, backward)
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    return {"peak_bytes": peak, "method": "torch.cuda.max_memory_allocated"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", required=True)
    parser.add_argument("--pass", dest="pass_", default="forward", choices=("forward", "forward+backward"))
    parser.add_argument("--size", nargs=3, type=int, metavar=("B", "N", "D"), required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    from sdd_fast.core.synthetic import structured_feats

    feats = structured_feats(*args.size)
    print(json.dumps(cpu_peak(args.impl, args.pass_, feats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
