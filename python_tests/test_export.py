"""torch.export: a model that calls torch.ops.sdd.dse in its forward exports, saves, loads and
runs again with the same result (the op stays an op in the graph; nothing is constant-folded)."""

import pytest
import torch

import sdd_fast

pytestmark = pytest.mark.skipif(not sdd_fast.has_ops(), reason="needs the compiled library")


class ProjectThenDSE(torch.nn.Module):
    """A linear projection of patch tokens [B, N, 16], then the DSE values [5] of the result."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(16, 16)

    def forward(self, tokens):
        return torch.ops.sdd.dse(self.proj(tokens), 3, 4, 2, True, 20, 1e-4, 1, "greedy", 0, None, None)


def test_export_save_load_runs_the_op_with_the_same_result(tmp_path):
    torch.manual_seed(0)
    model = ProjectThenDSE().eval()
    example, other = torch.randn(4, 32, 16), torch.randn(4, 32, 16) * 3
    exported = torch.export.export(model, (example,))
    assert "torch.ops.sdd.dse" in exported.graph_module.code
    path = tmp_path / "project_then_dse.pt2"
    torch.export.save(exported, path)
    loaded = torch.export.load(path).module()
    for tokens in (example, other):  # a new input gives its own values, not the traced ones
        assert torch.equal(loaded(tokens), model(tokens))
    assert not torch.equal(loaded(example), loaded(other))
