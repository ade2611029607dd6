"""Peak memory of one call at the headline size (B=8 in short mode): CUDA
max_memory_allocated growth, CPU resident-set growth in a fresh process (memory_probe.py).

The benchmark's own time is that of the probe (process start included): RESULTS.md shows
only the peak (extra_info["peak_bytes"]).
"""

import json
import os
import subprocess
import sys

import bench_utils
import pytest
from bench_utils import IMPLS, memory_size

HERE = os.path.dirname(os.path.abspath(__file__))
# The reference's forward+backward is left out: tens of seconds for a number of no interest.
# Short mode (CI): sdd_fast and one baseline, enough to keep the probe working.
CASES = [(impl, p) for impl in IMPLS for p in ("forward", "forward+backward")
         if not (impl == "reference" and p == "forward+backward")]
if bench_utils.SHORT:
    CASES = [(i, p) for i, p in CASES if i == "sdd_fast" or (i, p) == ("torch-batched", "forward")]


@pytest.mark.parametrize("impl,pass_", CASES, ids=[f"{i}-{p}" for i, p in CASES])
@pytest.mark.benchmark(group="peak memory (time: probe process, ignore)")
def test_peak_memory(benchmark, feats_for, device, impl, pass_):
    B, N, d = memory_size()
    result = {}

    def probe():
        if device == "cuda":
            import memory_probe

            result.update(memory_probe.cuda_peak(impl, pass_, feats_for(B, N, d, device)))
        else:
            out = subprocess.run([sys.executable, os.path.join(HERE, "memory_probe.py"), "--impl", impl,
                                  "--pass", pass_, "--size", str(B), str(N), str(d)],
                                 capture_output=True, text=True, timeout=900,
                                 env={**os.environ, "OMP_NUM_THREADS": "2"})
            assert out.returncode == 0, out.stderr[-3000:]
            result.update(json.loads(out.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(probe, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(kind="memory", device=device, impl=impl, B=B, N=N, d=d, **{"pass": pass_},
                                **result)
    assert result["peak_bytes"] >= 0
