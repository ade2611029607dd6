"""`sdd-fast study --quick` (about two minutes on 2 CPU cores): every stage runs, the outputs hold
every metric, a rerun reuses them."""

import json
import math
from types import SimpleNamespace

import pytest

from sdd_fast.cli import main as cli_main
from sdd_fast.study.plan import METRICS, StudyPlan


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    """The study's folder and what it wrote, read at once (test_rerun_reuses_finished_parts
    rewrites study.json and study.md for one method, whichever test runs first)."""
    out = tmp_path_factory.mktemp("study")
    assert cli_main(["study", "--out", str(out), "--quick", "--no-progress"]) == 0
    return SimpleNamespace(out=out, summary=json.loads((out / "study.json").read_text()),
                           text=(out / "study.md").read_text(), png=(out / "study.png").read_bytes())


def kendall_tau_b(a, b):
    """Kendall's tau-b over the pairs, written out (ties counted as in tau-b); None if undefined."""
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator > 0 else None


def recombined_p(rows):
    """SPEC "Model selection" score P per row and lambda, from the rows' DSE components."""
    relevance = [r["inter"] - (r["intra_image"] + r["intra_batch"]) / 2 for r in rows]
    dim = [r["dim"] for r in rows]

    def std(values):
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))

    lam = std(relevance) / std(dim) if max(dim) > min(dim) else 0.0
    return [rel + lam * d for rel, d in zip(relevance, dim)], lam


@pytest.mark.slow
def test_quick_study_writes_every_table_and_figure(quick_study):
    summary = quick_study.summary
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
        branches = part["regularization"]["branches"]
        assert set(branches) == {"0", "0.001"}
        assert all(b["step"] == selection["selected_step"] + 6 for b in branches.values())
    text = quick_study.text
    for heading in ("Kendall tau", "checkpoint selection", "Regularisation"):
        assert heading in text
    assert quick_study.png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_study_numbers_follow_from_its_rows(quick_study):
    """Every derived number of study.json recomputed here from the per-checkpoint rows: the
    score P and its lambda, the selected (argmax P: 3 checkpoints fit one window), last and best
    checkpoints with their mIoU, each Kendall tau (tau-b written out above, not scipy's), the
    averages over methods, and the selection table of study.md."""
    summary, text = quick_study.summary, quick_study.text
    taus, gains, gaps = {key: [] for key in METRICS}, [], []
    for method, part in summary["methods"].items():
        rows, selection = part["rows"], part["selection"]
        scores, lam = recombined_p(rows)
        assert [r["score_p"] for r in rows] == pytest.approx(scores, rel=1e-9, abs=1e-12), method
        assert selection["lambda"] == pytest.approx(lam, rel=1e-9), method
        chosen = max(range(len(rows)), key=lambda i: (scores[i], -i))
        best = max(range(len(rows)), key=lambda i: (rows[i]["miou"], -i))
        assert (selection["selected_step"], selection["selected_miou"]) == (rows[chosen]["step"], rows[chosen]["miou"])
        assert (selection["last_step"], selection["last_miou"]) == (rows[-1]["step"], rows[-1]["miou"])
        assert (selection["best_step"], selection["best_miou"]) == (rows[best]["step"], rows[best]["miou"])
        miou = [r["miou"] for r in rows]
        for key in METRICS:
            expected = kendall_tau_b([r[key] for r in rows], miou)
            got = part["tau"][key]
            assert (got is None or not math.isfinite(got)) if expected is None else got == pytest.approx(expected), \
                (method, key, got, expected)
            if expected is not None:
                taus[key].append(expected)
        gains.append(rows[chosen]["miou"] - rows[-1]["miou"])
        gaps.append(rows[best]["miou"] - rows[chosen]["miou"])
        assert (f"| {method} | {rows[chosen]['step']} | {rows[chosen]['miou']:.4f} | {rows[-1]['step']} | "
                f"{rows[-1]['miou']:.4f} | {rows[best]['step']} | {rows[best]['miou']:.4f} |") in text
    average = summary["average"]
    for key in METRICS:
        if taus[key]:
            assert average["tau"][key] == pytest.approx(sum(taus[key]) / len(taus[key]), abs=1e-12), key
    assert average["selected_minus_last"] == pytest.approx(sum(gains) / len(gains), abs=1e-12)
    assert average["best_minus_selected"] == pytest.approx(sum(gaps) / len(gaps), abs=1e-12)


@pytest.mark.slow
def test_quick_study_branches_replay_the_run_and_the_regulariser_acts(quick_study):
    """The beta-0 branch continues the run with its own options: where it ends on the run's last
    step (the same learning-rate schedule), its mIoU and DSE are that checkpoint's. The beta > 0
    branch starts from the same checkpoint and data, so a different DSE is the regulariser's doing."""
    summary = quick_study.summary
    replayed = 0
    for method, part in summary["methods"].items():
        branches, last = part["regularization"]["branches"], part["rows"][-1]
        assert branches["0.001"]["dse"] != branches["0"]["dse"], method
        if branches["0"]["step"] == last["step"]:
            replayed += 1
            assert branches["0"]["dse"] == pytest.approx(last["dse"], rel=1e-4, abs=1e-6), method
            assert branches["0"]["miou"] == pytest.approx(last["miou"], abs=1e-4), method
    selected = {m: p["selection"]["selected_step"] for m, p in summary["methods"].items()}
    assert replayed == sum(step == 6 for step in selected.values()), selected


@pytest.mark.slow
def test_rerun_reuses_finished_parts(quick_study):
    checkpoint = quick_study.out / "dino" / "train" / "checkpoints" / "step_000012.pt"
    before = checkpoint.stat().st_mtime_ns
    assert cli_main(["study", "--out", str(quick_study.out), "--quick", "--no-progress", "--methods", "dino"]) == 0
    assert checkpoint.stat().st_mtime_ns == before
    assert list(json.loads((quick_study.out / "study.json").read_text())["methods"]) == ["dino"]


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
