"""has_cuda() / missing_cuda_kernels() from the dispatcher, and the default device built on them.

The dispatcher is stubbed here, so these run on any build (CPU-only or none) and any machine;
test_torch_integration.py checks the same answers against the real dispatcher.
"""

import pytest
import torch

from sdd_fast.cli import UsageError
from sdd_fast.cli.common import resolve_device
from sdd_fast.core import library as _library
from sdd_fast.utils import devices


@pytest.fixture
def dispatcher(monkeypatch):
    """dispatcher(cuda_ops): a loaded library whose ops in `cuda_ops` (only) have CUDA kernels."""
    def install(cuda_ops):
        def has_kernel(name, key):
            assert name.startswith("sdd::")
            return key != "CUDA" or name[len("sdd::"):] in cuda_ops
        monkeypatch.setattr(_library, "_C", _library._C or object())
        monkeypatch.setattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", has_kernel)
    return install


@pytest.fixture
def gpu_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_every_kernel_registered_means_has_cuda(dispatcher):
    dispatcher(set(_library.KERNEL_OPS))
    assert _library.has_cuda() and _library.missing_cuda_kernels() == []


@pytest.mark.parametrize("absent", ["kmeans", "dse_backward"])
def test_one_missing_kernel_means_no_cuda_and_is_named(dispatcher, absent):
    dispatcher(set(_library.KERNEL_OPS) - {absent})
    assert not _library.has_cuda()
    assert _library.missing_cuda_kernels() == [absent]


def test_unregistered_schema_counts_as_missing(monkeypatch):
    def unknown(name, key):
        raise RuntimeError(f"operator {name} does not exist")
    monkeypatch.setattr(_library, "_C", object())
    monkeypatch.setattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", unknown)
    assert not _library.has_cuda()
    assert _library.missing_cuda_kernels() == list(_library.KERNEL_OPS)


def test_library_not_loaded_has_no_cuda(monkeypatch):
    monkeypatch.setattr(_library, "_C", None)
    assert not _library.has_cuda()
    assert _library.missing_cuda_kernels() == list(_library.KERNEL_OPS)


def test_default_device_is_cuda_only_with_a_gpu_and_every_kernel(dispatcher, gpu_visible):
    dispatcher(set(_library.KERNEL_OPS))
    assert devices.default_device().type == "cuda"
    assert devices.cuda_unavailable_reason() is None
    dispatcher(set(_library.KERNEL_OPS) - {"effective_rank"})
    assert devices.default_device().type == "cpu"
    assert "effective_rank" in devices.cuda_unavailable_reason()
    assert devices.default_device("cuda").type == "cuda"  # an explicit name is taken as given


def test_default_device_without_a_gpu_is_cpu(dispatcher, monkeypatch):
    dispatcher(set(_library.KERNEL_OPS))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.default_device().type == "cpu"


def test_device_option_refuses_cuda_without_kernels_for_dse_work(dispatcher, gpu_visible):
    dispatcher(set(_library.KERNEL_OPS) - {"dse_forward"})
    with pytest.raises(UsageError, match="dse_forward"):
        resolve_device("cuda")
    assert resolve_device("cuda", dse=False).type == "cuda"  # e.g. training with DSE off
    assert resolve_device(None).type == "cpu"
