"""evaluate_run -> eval.jsonl (resumable) -> `sdd-fast select` / `sdd-fast report`, on a tiny fake run."""

import importlib
import json

import pytest
import torch

from sdd_fast.cli import main
from sdd_fast.eval import EvalError, ProbeOptions, evaluate_run
from sdd_fast.eval.evaluate_run import ROW_KEYS
from sdd_fast.models import build_backbone
from sdd_fast.train.checkpoint import checkpoint_path, save_checkpoint
from sdd_fast.utils.jsonl import append_jsonl, read_jsonl, write_json, write_jsonl

# The module, not the function of the same name that sdd_fast.eval exports.
evaluate_module = importlib.import_module("sdd_fast.eval.evaluate_run")

STEPS = (0, 10, 20)
CONFIG = {"arch": "sdd_vit_micro_patch8", "img_size": 32, "data": "synthetic", "seed": 0, "method": "dino"}
EVAL_ARGS = ["--device", "cpu", "--probe-epochs", "1", "--dse-images", "16", "--dse-batch", "8",
             "--dse-seeds", "2", "--no-progress"]
SAME_SETTINGS = dict(device="cpu", probe=ProbeOptions(epochs=1), dse_images=16, dse_batch=8, dse_seeds=2,
                     progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


class FakeSegmentation(torch.utils.data.Dataset):
    """Random 32 x 32 images with 3 classes in quadrants (stands in for sdd_fast.data)."""

    def __init__(self, count, seed):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(count, 3, 32, 32, generator=g)
        quadrants = torch.randint(0, 3, (count, 2, 2), generator=g)
        self.masks = quadrants.repeat_interleave(16, 1).repeat_interleave(16, 2)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.masks[i]


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """OUT with config.json and 3 checkpoints of a tiny random ViT; the data sets are fakes."""
    out = tmp_path / "run"
    write_json(out / "config.json", CONFIG)
    with torch.random.fork_rng():
        for step in STEPS:
            torch.manual_seed(step)
            backbone = build_backbone(CONFIG["arch"], CONFIG["img_size"])
            save_checkpoint({"format": 1, "step": step, "config": CONFIG, "backbone": backbone.state_dict()},
                            checkpoint_path(out, step))
    calls = []

    def fake_splits(data, img_size):
        calls.append(data)
        assert img_size == 32
        return FakeSegmentation(32, 0), FakeSegmentation(16, 1), 3

    monkeypatch.setattr(evaluate_module, "load_splits", fake_splits)
    return out


def count_probes(monkeypatch):
    calls = []
    real = evaluate_module.linear_probe

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "linear_probe", counting)
    return calls


def test_eval_select_report_end_to_end(run_dir, monkeypatch, capsys):
    assert main(["eval", "--run", str(run_dir)] + EVAL_ARGS) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "eval.jsonl" in printed
    rows = read_jsonl(run_dir / "eval.jsonl")
    assert [row["step"] for row in rows] == list(STEPS)
    assert all(set(row) == set(ROW_KEYS) for row in rows)
    assert rows[1]["checkpoint"] == "checkpoints/step_000010.pt"
    assert all(0 <= row["miou"] <= 1 and 0 <= row["pixel_acc"] <= 1 for row in rows)
    for row in rows:  # DSE = inter + dim - (intra_image + intra_batch) / 2, per batch and so for the means
        expected = row["inter"] + row["dim"] - (row["intra_image"] + row["intra_batch"]) / 2
        assert row["dse"] == pytest.approx(expected, rel=1e-5)

    # Interrupted after two checkpoints: only the third is probed again; the others are kept.
    write_jsonl(run_dir / "eval.jsonl", rows[:2])
    probes = count_probes(monkeypatch)
    resumed = evaluate_run(run_dir, **SAME_SETTINGS)
    assert len(probes) == 1 and resumed[:2] == rows[:2] and len(resumed) == 3
    assert resumed[2] == pytest.approx(rows[2])  # same seed, same images: the same numbers
    assert evaluate_run(run_dir, **SAME_SETTINGS) == resumed and len(probes) == 1  # nothing to do

    # Other settings never mix with the rows already there, unless forced.
    with pytest.raises(EvalError, match="force"):
        evaluate_run(run_dir, **{**SAME_SETTINGS, "dse_images": 8})
    with pytest.raises(EvalError, match="dse_seeds"):
        evaluate_run(run_dir, **{**SAME_SETTINGS, "dse_seeds": 1})
    evaluate_run(run_dir, **{**SAME_SETTINGS, "dse_images": 8}, force=True)
    assert len(probes) == 4
    stale = {**SAME_SETTINGS, "dse_images": 8, "dse_seeds": 1}
    assert len(evaluate_run(run_dir, **stale, redo_stale=True)) == 3 and len(probes) == 7  # all redone
    evaluate_run(run_dir, **stale, redo_stale=True)
    assert len(probes) == 7  # not stale any more: nothing to do

    assert main(["select", "--run", str(run_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # stdout is exactly one JSON object
    assert out["source"] == "eval.jsonl" and out["method"] == "recombined"
    assert 1 <= len(out["selected"]) <= 3 and set(out["selected"]) <= set(STEPS)
    assert len(out["scores"]) == 3 and isinstance(out["lambda"], float)
    assert out["checkpoints"][0] == f"checkpoints/step_{out['selected'][0]:06d}.pt"
    assert main(["select", "--run", str(run_dir), "--json", "--plain-dse", "--top", "1"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["lambda"] == 1.0 and len(plain["selected"]) == 1
    assert plain["scores"] == pytest.approx([row["dse"] for row in read_jsonl(run_dir / "eval.jsonl")])
    assert main(["select", "--run", str(run_dir)]) == 0
    assert "rank" in capsys.readouterr().out

    assert main(["report", "--run", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(run_dir / "report.png"), str(run_dir / "report.md")]
    assert (run_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (run_dir / "report.md").read_text()
    assert "Kendall" in text and "best (oracle" in text and "| 20 |" in text and "one k-means seed" in text
    assert not list(run_dir.glob(".*.tmp"))  # atomic writes leave no temp files


def patch_grid_tokens(images):
    """images [B, 3, 32, 32] -> their 16 pixel patches of 8 x 8 as tokens [B, 16, 192]."""
    return images.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 1, 4, 5).reshape(images.shape[0], 16, -1)


def test_averaged_dse_averages_batches_and_kmeans_seeds():
    from sdd_fast import dse

    images = torch.randn(24, 3, 32, 32)  # structureless: k-means partitions differ between seeds
    got = evaluate_module.averaged_dse(patch_grid_tokens, images, batch=8, seeds=3)
    assert set(got) == set(evaluate_module.COMPONENTS) | {evaluate_module.SPREAD_KEY}
    per_call = torch.tensor([[list(map(float, dse(patch_grid_tokens(images[i:i + 8]), seed=seed)))
                              for i in (0, 8, 16)] for seed in range(3)], dtype=torch.float64)  # [S, batches, 5]
    per_seed = per_call.mean(1)  # [S, 5]
    for j, name in enumerate(evaluate_module.COMPONENTS):
        assert got[name] == pytest.approx(float(per_seed[:, j].mean()), rel=1e-6)
    spread = float(((per_seed[:, 0] - per_seed[:, 0].mean()) ** 2).mean().sqrt())
    assert got["dse_seed_sd"] == pytest.approx(spread, rel=1e-6) and spread > 0

    one = evaluate_module.averaged_dse(patch_grid_tokens, images, batch=8, seeds=1)
    assert one["dse_seed_sd"] == 0.0 and one["dse"] == pytest.approx(float(per_call[0, :, 0].mean()), rel=1e-6)
    with pytest.raises(EvalError, match="dse_seeds"):
        evaluate_module.averaged_dse(patch_grid_tokens, images, batch=8, seeds=0)


def test_report_compares_the_seed_spread_with_the_dse_range():
    from sdd_fast.selection.run_report import render_markdown, summarize

    rows = [{"step": 10 * i, "checkpoint": f"c{i}", "miou": 0.1 + 0.01 * i, "pixel_acc": 0.5, "dse": 0.02 * i,
             "inter": 0.5, "intra_image": 0.2, "intra_batch": 0.3, "dim": 0.1, "dse_seed_sd": 0.001 * (i + 1)}
            for i in range(4)]
    text = render_markdown(rows, summarize(rows), "t", {"dse_seeds": 4})
    assert "averaged over 4 k-means seeds; their spread (std) is 0.0025 per checkpoint on average, " \
           "against a DSE range of 0.0600" in text
    assert "k-means seed" not in render_markdown([{k: v for k, v in row.items() if k != "dse_seed_sd"}
                                                  for row in rows], summarize(rows), "t", {"dse_seeds": 4})


def test_select_from_metrics_jsonl(run_dir, capsys):
    for step in range(1, 21):  # per-step DSE as logged in training (no eval.jsonl)
        append_jsonl(run_dir / "metrics.jsonl", {"step": step, "loss": 1.0, "dse": 0.1 * (step % 7),
                                                 "inter": 0.5, "intra_image": 0.2, "intra_batch": 0.3,
                                                 "dim": 0.01 * step})
    assert main(["select", "--run", str(run_dir), "--json", "--plain-dse"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "metrics.jsonl (checkpointed steps)"
    assert out["steps"] == [10, 20]  # the logged steps that have a checkpoint (step 0 has no row)
    assert out["selected"] == [20]  # DSE 0.3 (step 10) vs 0.6 (step 20): fewer than 3, argmax


def test_clear_errors(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--run", str(run_dir)])
    assert exit_info.value.code == 2 and "sdd-fast eval" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["select", "--run", str(tmp_path / "missing")])
    assert "no such run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["select", "--run", str(run_dir)])
    assert "metrics.jsonl" in capsys.readouterr().err
    write_json(run_dir / "config.json", {**CONFIG, "data": "imagefolder:/photos"})  # data without masks
    with pytest.raises(SystemExit):
        main(["eval", "--run", str(run_dir)] + EVAL_ARGS)
    assert "--data synthetic or --data voc:PATH" in capsys.readouterr().err
    empty = tmp_path / "empty"
    write_json(empty / "config.json", CONFIG)
    with pytest.raises(EvalError, match="no step_XXXXXX.pt"):
        evaluate_run(empty, progress=False)


def test_imagefolder_data_is_refused():
    with pytest.raises(EvalError, match="--data synthetic"):
        evaluate_module.load_splits("imagefolder:/photos", 32)


def test_atomic_writes_get_plain_file_permissions(tmp_path):
    import os
    import stat

    from sdd_fast.utils.atomic import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.txt", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert (tmp_path / "a.txt").read_bytes() == b"x"
