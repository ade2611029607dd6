"""opcheck on every op, torch.compile(fullgraph=True), build information."""

import sys

import pytest
import torch

import sdd_fast
from sdd_fast.core.library import KERNEL_OPS

OPS = list(KERNEL_OPS)


def opcheck_cases():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 12, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 12), generator=g)
    centroids = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    feats = torch.randn(4, 8, 5, generator=g, dtype=torch.float64)
    fwd = torch.ops.sdd.dse_forward(feats, 2, 3, 2, True, 20, 1e-4, 1, "greedy", 0, None, None)
    scores, targets = torch.rand(3, 9, generator=g, dtype=torch.float64), torch.rand(3, 9, generator=g,
                                                                                       dtype=torch.float64)
    ap_options = (0.3, 1.0, 0.2, False, "auto")
    return {
        "continuous_ap_loss": (scores.clone().requires_grad_(), targets, torch.full_like(scores, 0.5), *ap_options),
        "continuous_ap_loss_backward": (torch.randn(3, generator=g, dtype=torch.float64), scores, targets, None,
                                        *ap_options),
        "kmeans": (x, 3, 10, 1e-4, 1, "greedy", 0),
        "cluster_singular_sum": (x.clone().requires_grad_(), labels, 3),
        "cluster_singular_sum_backward": (torch.randn(2, 3, dtype=torch.float64), x, labels, 3),
        "effective_rank": (x.clone().requires_grad_(),),
        "effective_rank_backward": (torch.randn(2, dtype=torch.float64), x),
        "inter_cluster_distance": (x.clone().requires_grad_(), centroids.clone().requires_grad_(), labels),
        "inter_cluster_distance_backward": (torch.randn(2, dtype=torch.float64), x, centroids, labels),
        "dse_forward": (feats.clone().requires_grad_(), 2, 3, 2, True, 20, 1e-4, 1, "greedy", 0, None, None),
        "dse_backward": (torch.randn(5, dtype=torch.float64), fwd[0], feats, *fwd[1:], 2, 3, 2, True),
    }


@pytest.mark.parametrize("name", OPS)
def test_opcheck(name):
    torch.library.opcheck(getattr(torch.ops.sdd, name).default, opcheck_cases()[name])


def test_every_op_has_a_cpu_kernel():
    for name in OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"sdd::{name}", "CPU"), name
    assert torch._C._dispatch_has_kernel_for_dispatch_key("sdd::dse", "CompositeImplicitAutograd")


def test_kernel_ops_lists_every_op_of_the_namespace():
    """KERNEL_OPS (what has_cuda() checks) is every registered sdd op but the composite `dse`:
    an op added without being listed would escape the CUDA check."""
    registered = {name.split("::", 1)[1].split(".")[0] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("sdd::")}
    assert registered == set(KERNEL_OPS) | {"dse"}


def test_has_cuda_answers_from_the_dispatcher():
    found = {op: torch._C._dispatch_has_kernel_for_dispatch_key(f"sdd::{op}", "CUDA") for op in KERNEL_OPS}
    assert sdd_fast.missing_cuda_kernels() == [op for op, ok in found.items() if not ok]
    assert sdd_fast.has_cuda() == all(found.values())


def test_build_info():
    assert sdd_fast.has_ops()
    # Linux builds compile the CPU kernels with OpenMP whenever torch threads with it (else
    # at::parallel_for is a serial loop and DSE runs on one core).
    assert sdd_fast.has_openmp() == (sys.platform.startswith("linux") and torch._C.has_openmp)
    assert isinstance(sdd_fast.has_cuda(), bool)
    # cuda_version() tells whether nvcc compiled anything in; has_cuda() whether every op got a
    # CUDA kernel, so only the first implies the second.
    compiled_cuda = sdd_fast.core.library._C.has_cuda()
    assert (sdd_fast.cuda_version() >= 11000) if compiled_cuda else (sdd_fast.cuda_version() == -1)
    if sdd_fast.has_cuda():
        assert compiled_cuda


def test_torch_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()

    def step(feats):
        result = sdd_fast.dse(feats, local_k=2, global_k=3, group=2)
        return feats.pow(2).mean() - 0.1 * result.dse, result

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    feats = torch.randn(4, 8, 6, requires_grad=True)
    loss, result = compiled(feats)
    loss.backward()
    eager_feats = feats.detach().clone().requires_grad_()
    eager_loss, eager_result = step(eager_feats)
    eager_loss.backward()
    torch.testing.assert_close(torch.stack(list(result)), torch.stack(list(eager_result)))
    torch.testing.assert_close(feats.grad, eager_feats.grad)


# The differentiable ops and their backward ops. Their autograd kernels are C++ (csrc/autograd/,
# TORCH_LIBRARY_IMPL(sdd, Autograd, m)), so a libtorch user of sdd::dse gets gradients too.
AUTOGRAD_OPS = ("cluster_singular_sum", "cluster_singular_sum_backward", "effective_rank", "effective_rank_backward",
                "inter_cluster_distance", "inter_cluster_distance_backward", "dse_forward", "dse_backward")


def autograd_registration(op):
    """The line of the dispatcher's table for op's Autograd kernel ("... registered at FILE:LINE")."""
    lines = [line for line in torch._C._dispatch_dump(f"sdd::{op}").splitlines() if line.startswith("Autograd[")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("op", AUTOGRAD_OPS)
def test_autograd_is_registered_in_cpp(op):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"sdd::{op}", "Autograd")
    for key in ("AutogradCPU", "AutogradCUDA"):  # the alias key covers every backend's autograd key
        assert torch._C._dispatch_has_computed_kernel_for_dispatch_key(f"sdd::{op}", key)
    # A C++ registration names its source file; torch.library.register_autograd would name none.
    where = autograd_registration(op)
    assert "csrc/autograd/" in where and ".cpp:" in where, where


def test_dse_gradient_flows_through_the_cpp_autograd_kernel():
    """gradcheck of torch.ops.sdd.dse in fp64 through the C++ autograd node of dse_forward (given
    labels: finite differences cannot hold k-means' choices constant; intra_image, intra_batch and
    dim, as in test_dse.py). The labels, centroids, nearest-other indices and permutation are
    outputs without a gradient; the backward op is not twice differentiable."""
    feats = torch.randn(4, 8, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    labels = torch.ops.sdd.dse_forward(feats, 2, 3, 2, True, 20, 1e-4, 1, "greedy", 0, None, None)
    local, glob = labels[1], labels[2]
    feats.requires_grad_()
    out = torch.ops.sdd.dse_forward(feats, 2, 3, 2, True, 20, 1e-4, 1, "greedy", 0, local, glob)
    assert "DseForwardFunction" in out[0].grad_fn.name()  # torch::autograd::CppNode<...DseForwardFunction>
    assert [t.requires_grad for t in out] == [True, False, False, False, False, False]
    fn = lambda f: torch.ops.sdd.dse(f, 2, 3, 2, True, 20, 1e-4, 1, "greedy", 0, local, glob)[2:]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (feats,))
    (grad,) = torch.autograd.grad(fn(feats).sum(), feats, create_graph=True)
    with pytest.raises(RuntimeError, match="sdd::dse_backward"):
        grad.sum().backward()
