"""sdd_fast.dse forward and forward+backward over a grid of sizes (B=64, N=196, d=384 is the
headline); the baselines at the same sizes are in test_bench_baselines.py."""

import pytest
from bench_utils import HEADLINE, dse_sizes, make_call, measure, size_id, skip_unless_measured


def _kind(size):
    return "dse-large" if size[0] * size[1] * size[2] > 2 * HEADLINE[0] * HEADLINE[1] * HEADLINE[2] else "dse"


@pytest.mark.parametrize("size", dse_sizes(), ids=size_id)
@pytest.mark.benchmark(group="dse forward")
def test_dse_forward(benchmark, feats_for, device, size):
    skip_unless_measured(device, size)
    call = make_call("sdd_fast", feats_for(*size, device), backward=False)
    values = measure(benchmark, call, device, _kind(size), kind="dse", impl="sdd_fast", **{"pass": "forward"},
                     B=size[0], N=size[1], d=size[2])
    benchmark.extra_info["values"] = values.double().cpu().tolist()


@pytest.mark.parametrize("size", dse_sizes(), ids=size_id)
@pytest.mark.benchmark(group="dse forward+backward")
def test_dse_forward_backward(benchmark, feats_for, device, size):
    skip_unless_measured(device, size)
    measure(benchmark, make_call("sdd_fast", feats_for(*size, device), backward=True), device, _kind(size),
            kind="dse", impl="sdd_fast", **{"pass": "forward+backward"}, B=size[0], N=size[1], d=size[2])
