"""The CPU roofline and the no-collapse-under-load check, at the headline size.

- GEMM peaks: large fp32 and fp64 products on the benchmark's threads (this run, this host);
- the work of one dse call (roofline.py: flops from shapes, cluster sizes and the Lloyd
  iterations actually run), which write_results.py divides by the peaks: the roofline time of
  the forward and forward+backward rows;
- under load: another process keeps both cores busy (a 2-thread matmul loop, load_generator.py)
  while dse forward is timed; the same call's idle median is taken right before in this test.
"""

import os
import statistics
import subprocess
import sys
import time

import pytest
import torch
from bench_utils import HEADLINE, SHORT, THREADS, make_call, measure, rounds

HERE = os.path.dirname(os.path.abspath(__file__))
PEAK_SIZE = 2048


@pytest.fixture
def cpu_only(device):
    if device != "cpu":
        pytest.skip("the roofline and the load benchmark are CPU measures")


@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
@pytest.mark.benchmark(group="GEMM peak")
def test_gemm_peak(benchmark, device, cpu_only, dtype):
    torch_dtype = torch.float32 if dtype == "fp32" else torch.float64
    a = torch.randn(PEAK_SIZE, PEAK_SIZE, dtype=torch_dtype)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE, dtype=torch_dtype)
    benchmark.pedantic(lambda: torch.mm(a, b), rounds=3 if SHORT else 7, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.min  # the peak: the best round
    benchmark.extra_info.update(kind="peak", device=device, dtype=dtype, size=PEAK_SIZE,
                                gflops=2.0 * PEAK_SIZE ** 3 / seconds / 1e9)


@pytest.mark.benchmark(group="dse work (flops, Lloyd iterations)")
def test_dse_work(benchmark, feats_for, device, cpu_only):
    import roofline

    feats = feats_for(*HEADLINE, device)
    result = {}
    benchmark.pedantic(lambda: result.update(roofline.count_dse(feats)), rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(kind="work", device=device, B=HEADLINE[0], N=HEADLINE[1], d=HEADLINE[2], **result)
    counters = result["counters"]
    assert counters["lloyd_iterations"] > 0 and 0 < counters["distances_computed"] <= counters["distances_full"]


def _start_load(threads: int) -> subprocess.Popen:
    load = subprocess.Popen([sys.executable, os.path.join(HERE, "load_generator.py"), "--threads", str(threads)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    assert load.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # its threads are spinning
    return load


@pytest.mark.benchmark(group="dse forward under load")
def test_dse_under_load(benchmark, feats_for, device, cpu_only):
    call = make_call("sdd_fast", feats_for(*HEADLINE, device), backward=False)
    n_rounds, warmup = rounds("dse", device)
    for _ in range(warmup):
        call()
    idle = []
    for _ in range(n_rounds):
        start = time.perf_counter()
        call()
        idle.append(time.perf_counter() - start)
    load = _start_load(THREADS)
    try:
        measure(benchmark, call, device, "dse", kind="load", impl="sdd_fast", **{"pass": "forward"},
                B=HEADLINE[0], N=HEADLINE[1], d=HEADLINE[2], load_threads=THREADS)
    finally:
        load.kill()
        load.wait()
    benchmark.extra_info["idle_ms"] = statistics.median(idle) * 1e3
