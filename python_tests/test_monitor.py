"""DSEMonitor, DSERegularizer and the loggers: what users put in their own loops."""

import json

import pytest
import torch
from helpers import clustered_feats

import sdd_fast
from sdd_fast.core.options import DSE_FIELDS as COMPONENTS
from sdd_fast.integrations.loggers import CsvLogger, JsonlLogger


class ListLogger:
    def __init__(self):
        self.rows, self.closed = [], False

    def log(self, row):
        self.rows.append(row)

    def close(self):
        self.closed = True


def test_monitor_logs_components_every_k_steps_one_call_late():
    feats, _ = clustered_feats(images=8, classes=3, patches=48, dim=32)
    sink = ListLogger()
    monitor = sdd_fast.DSEMonitor(every=2, loggers=[sink], dse_options={"global_k": 6, "group": 4})
    monitor.log(1, feats, loss=torch.tensor(3.0))
    assert sink.rows == []  # deferred: numbers are read one call later
    monitor.log(2, feats, loss=torch.tensor(2.5))
    monitor.log(3, feats, loss=torch.tensor(2.0))
    monitor.close()
    assert sink.closed and [row["step"] for row in sink.rows] == [1, 2, 3]
    assert "dse" not in sink.rows[0] and "dse" not in sink.rows[2]
    expected = sdd_fast.dse(feats, global_k=6, group=4).to_dict()
    for name in COMPONENTS:
        assert sink.rows[1][name] == pytest.approx(expected[name], rel=1e-6)
    assert sink.rows[1]["loss"] == 2.5 and isinstance(sink.rows[1]["loss"], float)
    assert sink.rows[1]["dse_ms"] > 0


def test_monitor_every_zero_never_computes_and_negative_is_rejected():
    sink = ListLogger()
    monitor = sdd_fast.DSEMonitor(every=0, loggers=[sink])
    monitor.log(1, torch.randn(2, 16, 8), loss=1.0)
    monitor.close()
    assert sink.rows == [{"step": 1, "loss": 1.0}]
    with pytest.raises(ValueError, match="every"):
        sdd_fast.DSEMonitor(every=-1)


def test_regularizer_is_minus_beta_dse_and_its_gradient_flows():
    feats, _ = clustered_feats(images=4, classes=3, patches=24, dim=16, noise=0.3)
    feats = feats.requires_grad_()
    reg = sdd_fast.DSERegularizer(beta=0.5, global_k=4, group=4)
    term = reg(feats)
    value = sdd_fast.dse(feats.detach(), global_k=4, group=4).dse
    assert term.item() == pytest.approx(-0.5 * value.item(), rel=1e-6)
    term.backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0
    assert reg.last.dse.item() == pytest.approx(value.item(), rel=1e-6)


def test_regularizer_beta_zero_keeps_graph_and_rejects_negative():
    feats = torch.randn(2, 16, 8, requires_grad=True)
    term = sdd_fast.DSERegularizer(beta=0.0)(feats)
    term.backward()
    assert term.item() == 0 and torch.equal(feats.grad, torch.zeros_like(feats))
    with pytest.raises(ValueError, match="beta"):
        sdd_fast.DSERegularizer(beta=-1.0)


def test_jsonl_and_csv_loggers_truncate_rows_past_a_resumed_step(tmp_path):
    jl, cl = JsonlLogger(tmp_path / "m.jsonl"), CsvLogger(tmp_path / "m.csv", ["step", "loss"])
    for step in range(1, 6):
        jl.log({"step": step, "loss": float(step)})
        cl.log({"step": step, "loss": float(step), "ignored": 1})
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # torn by a crash
    jl.truncate_after(3)
    cl.truncate_after(3)
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (tmp_path / "m.csv").read_text().splitlines() == ["step,loss", "1,1.0", "2,2.0", "3,3.0"]
