"""Benchmarks run with pytest-benchmark: `make bench` (CI runs a short mode)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads():
    """The CPU targets are stated for 2 threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
