"""On plain CPU tensors that require grad, the autograd node of dse_forward keeps the forward's
eigen-decompositions and the backward reuses them (no Gram, no eigensolver in the backward):
the gradient must be that of the backward op, which rebuilds everything, bit for bit."""

import pytest
import torch

import sdd_fast
from sdd_fast.core.synthetic import structured_feats

OPTIONS = (3, 24, 8, True, 20, 1e-4, 1, "greedy", 0)


def _op_gradient(feats, weights, local=None, glob=None):
    out = torch.ops.sdd.dse_forward(feats, *OPTIONS, local, glob)
    return torch.ops.sdd.dse_backward(weights, out[0], feats, out[1], out[2], out[3], out[4], out[5], 3, 24, 8, True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("given_labels", [False, True])
def test_kept_spectra_give_the_backward_ops_gradient(dtype, given_labels):
    feats = structured_feats(12, 49, 40).to(dtype)
    local = glob = None
    if given_labels:
        out = torch.ops.sdd.dse_forward(feats, *OPTIONS, None, None)
        local, glob = out[1], out[2]
    weights = torch.tensor([1.0, 0.3, -0.2, 0.5, 0.7], dtype=dtype)
    x = feats.clone().requires_grad_()
    values = torch.ops.sdd.dse_forward(x, *OPTIONS, local, glob)[0]
    (values * weights).sum().backward()
    assert torch.equal(x.grad, _op_gradient(feats, weights, local, glob))


def test_no_grad_calls_and_gradient_free_inputs_take_the_op_path():
    feats = structured_feats(8, 49, 32)
    with torch.no_grad():
        a = torch.stack(tuple(sdd_fast.dse(feats.clone().requires_grad_())))
    b = torch.stack(tuple(sdd_fast.dse(feats)))
    assert torch.equal(a, b) and b.grad_fn is None
