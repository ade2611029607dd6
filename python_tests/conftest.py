"""Shared fixtures: device parametrisation (cpu, and cuda when present), slow-test switch.

Markers (pyproject.toml): `cuda` tests need a GPU and are skipped without one; `slow` tests (the
quick study, the longer trainer runs) are skipped unless `--run-slow` is given, which
`make test-all` and `.ci/run` do (`make test` leaves them out)."""

import zlib

import pytest
import torch

import sdd_fast


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow")
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)


def pytest_report_header(config):
    return (f"sdd_fast: compiled={sdd_fast.has_ops()} cuda_kernels={sdd_fast.has_cuda()} "
            f"torch={torch.__version__} threads={torch.get_num_threads()}")


# The cuda case carries the `cuda` marker, as every test that runs on a GPU does: `-m cuda` (gpu-check)
# selects it and `-m "not cuda"` leaves it out.
DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)]
                     if torch.cuda.is_available() and sdd_fast.has_cuda() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def one_thread():
    """Tiny workloads: one intra-op thread is as fast, and immune to a busy CPU's
    oversubscription (OpenMP teams waiting on descheduled threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def seeded_rng(request):
    """Every test draws from torch's global RNG seeded by its own id: a failure reproduces
    run after run (and alone), while different tests still see different data."""
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
