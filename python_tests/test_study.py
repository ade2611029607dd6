"""`sdd-fast study --quick` (about two minutes on 2 CPU cores): every stage runs, the outputs hold
every metric, a rerun reuses them."""

import json
import math

import pytest

from sdd_fast.cli import main as cli_main
from sdd_fast.study.plan import METRICS, StudyPlan


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    assert cli_main(["study", "--out", str(out), "--quick", "--no-progress"]) == 0
    return out


def test_quick_study_writes_every_table_and_figure(quick_study):
    summary = json.loads((quick_study / "study.json").read_text())
    assert summary["plan"]["methods"] == ["dino", "ibot", "mocov3", "mae"]
    assert set(summary["methods"]) == {"dino", "ibot", "mocov3", "mae"}
    for method, part in summary["methods"].items():
        assert [row["step"] for row in part["rows"]] == [0, 6, 12], method
        for row in part["rows"]:
            for key in ("miou", "dse", "dense_rankme", "rankme_pooled", "alpha_req", "lidar", "score_p"):
                assert row[key] is not None and math.isfinite(row[key]), (method, key, row)
            assert 1.0 <= row["dense_rankme"] <= 128 and 1.0 <= row["lidar"] <= 128
        assert set(part["tau"]) == set(METRICS)
        selection = part["selection"]
        assert selection["selected_step"] in (0, 6, 12) and selection["last_step"] == 12
        assert selection["best_miou"] >= max(selection["selected_miou"], selection["last_miou"])
        branches = part["regularization"]["branches"]
        assert set(branches) == {"0", "0.001"}
        assert all(b["step"] == selection["selected_step"] + 6 for b in branches.values())
    text = (quick_study / "study.md").read_text()
    for heading in ("Kendall tau", "checkpoint selection", "Regularisation"):
        assert heading in text
    assert (quick_study / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_reuses_finished_parts(quick_study):
    checkpoint = quick_study / "dino" / "train" / "checkpoints" / "step_000012.pt"
    before = checkpoint.stat().st_mtime_ns
    assert cli_main(["study", "--out", str(quick_study), "--quick", "--no-progress", "--methods", "dino"]) == 0
    assert checkpoint.stat().st_mtime_ns == before
    assert list(json.loads((quick_study / "study.json").read_text())["methods"]) == ["dino"]


@pytest.mark.parametrize("args, message", [
    (["--methods", "dino,simclr"], "--methods must be"),
    (["--methods", "dino,dino"], "twice"),
    (["--checkpoints", "20", "--steps", "10"], "--checkpoints 20 cannot exceed"),
    (["--reg-beta", "0"], "--reg-beta must be > 0"),
])
def test_bad_study_options_are_refused_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["study", "--out", str(tmp_path / "s"), "--quick", *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_quick_plan_is_smaller_than_the_full_one():
    quick, full = StudyPlan.quick("x"), StudyPlan("x")
    assert quick.steps < full.steps and quick.batch_size < full.batch_size and quick.quick_mode
    quick.validate()
    full.validate()


def test_eval_baselines_flag_adds_every_baseline_column(tmp_path):
    run = tmp_path / "run"
    assert cli_main(["train", "--out", str(run), "--method", "mae", "--steps", "2", "--img-size", "32",
                     "--batch-size", "8", "--no-progress"]) == 0
    assert cli_main(["eval", "--run", str(run), "--baselines", "--lidar-views", "3", "--max-train-images", "16",
                     "--max-val-images", "8", "--dse-images", "16", "--dse-batch", "16", "--probe-epochs", "1",
                     "--no-progress"]) == 0
    rows = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 2]
    for row in rows:
        for key in ("dense_rankme", "rankme_cls", "rankme_pooled", "alpha_req", "lidar"):
            assert math.isfinite(row[key]), (key, row)
    settings = json.loads((run / "eval_config.json").read_text())
    assert settings["baselines"] is True and settings["lidar_views"] == 3
