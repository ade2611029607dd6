"""`sdd-fast study --quick` (about four minutes on 2 idle CPU cores): every stage runs, the outputs
hold every metric, a rerun reuses them; the over-seeds parts (bootstrap intervals, the alarm's
online pick, the regulariser sweep and its gradient ratio) on known cases and recomputed from
the quick study's rows."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

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
    for heading in ("Kendall tau", "checkpoint selection", "Regularisation", "CoTAP"):
        assert heading in text
    assert quick_study.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (quick_study.out / "alarm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # CoTAP continued DINO and iBOT (first seed) for 4 steps, beside its control; step 0 of both
    # is the init run's last checkpoint, so "before" is that network's evaluation.
    for method in ("dino", "ibot"):
        cotap = summary["methods"][method]["cotap"]
        assert cotap["init_step"] == 12 and cotap["steps"] == 4
        assert cotap["cotap"]["step"] == cotap["control"]["step"] == 4
        assert cotap["before"]["miou"] == pytest.approx(summary["methods"][method]["rows"][-1]["miou"], abs=0.02)
        assert cotap["cotap"]["dse"] != cotap["control"]["dse"]  # the AP loss changed the network
    assert summary["methods"]["mocov3"]["cotap"] is None and summary["methods"]["mae"]["cotap"] is None


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
    # the new stages too: the second seed's run, the sweep's runs and their cached gradient norms
    kept = [quick_study.out / "mae" / "seed1" / "train" / "checkpoints" / "step_000012.pt",
            quick_study.out / "mae" / "sweep" / "scratch_beta0.1" / "checkpoints" / "step_000012.pt",
            quick_study.out / "mae" / "seed1" / "sweep" / "scratch_beta0.1" / "grad_norms.json",
            quick_study.out / "mae" / "branch_beta0.1" / "grad_norms.json"]
    before = [path.stat().st_mtime_ns for path in kept]
    assert cli_main(["study", "--out", str(quick_study.out), "--quick", "--no-progress", "--methods", "mae"]) == 0
    assert [path.stat().st_mtime_ns for path in kept] == before


@pytest.mark.parametrize("args, message", [
    (["--methods", "dino,simclr"], "--methods must be"),
    (["--methods", "dino,dino"], "twice"),
    (["--checkpoints", "20", "--steps", "10"], "--checkpoints 20 cannot exceed"),
    (["--reg-beta", "0"], "--reg-beta must be > 0"),
    (["--betas", "0.1,1"], "--betas must be"),
    (["--betas", "0,x"], "--betas must be"),
    (["--betas", "0,0.1,0.1"], "twice"),
    (["--sweep-methods", "simclr"], "--sweep-methods must be"),
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


# ---- over seeds: bootstrap intervals, the online pick, the gradient ratio ------------------------


def test_kendall_tau_leaves_out_non_finite_pairs_and_is_nan_when_undefined():
    from sdd_fast.selection import kendall_tau

    assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])) and math.isnan(kendall_tau([1.0], [2.0]))
    assert kendall_tau([1, 2, float("nan"), 3], [1, 2, 0, 3]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0


def test_bootstrap_of_constant_data_has_zero_width():
    from sdd_fast.study.stats import scalar_summary, tau_summary

    flat = scalar_summary([0.25] * 5, resamples=200)
    assert (flat["mean"], flat["low"], flat["high"]) == (0.25, 0.25, 0.25)
    # every seed perfectly concordant: any resample of checkpoints (ties included) keeps tau 1
    groups = [np.column_stack([np.arange(6.0), np.arange(6.0) * k]) for k in (1.0, 2.0, 3.0)]
    tau = tau_summary(groups, resamples=200)
    assert [tau["mean"], tau["low"], tau["high"]] == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)


def test_bootstrap_is_reproducible_and_covers_the_mean_about_95_percent():
    from sdd_fast.study.stats import scalar_summary

    rng = np.random.default_rng(7)
    sample = list(rng.normal(size=10))
    first, again = scalar_summary(sample, resamples=300), scalar_summary(sample, resamples=300)
    assert np.array_equal(first["draws"], again["draws"])  # a fixed bootstrap seed
    covered, trials = 0, 100
    for _ in range(trials):
        result = scalar_summary(list(rng.normal(loc=1.0, size=15)), resamples=300)
        assert result["low"] <= result["mean"] <= result["high"]
        covered += result["low"] <= 1.0 <= result["high"]
    assert 0.82 <= covered / trials <= 1.0, covered  # percentile bootstrap, n = 15: a little under 95 %


def test_average_over_methods_averages_points_and_draws():
    from sdd_fast.study.stats import average_summaries, scalar_summary

    a, b = scalar_summary([0.0, 0.2, 0.4], resamples=100), scalar_summary([1.0, 1.0, 1.0], resamples=100)
    mean = average_summaries([a, b])
    assert mean["mean"] == pytest.approx(0.6)
    assert np.allclose(mean["draws"], (a["draws"] + b["draws"]) / 2)


def component_rows(relevance, dim, steps=None):
    """Eval rows whose DSE components give `relevance` (inter; intra 0) and `dim`."""
    steps = steps or [10 * i for i in range(len(relevance))]
    return [{"step": s, "inter": r, "intra_image": 0.0, "intra_batch": 0.0, "dim": d, "miou": 0.1 + s / 1000}
            for s, r, d in zip(steps, relevance, dim)]


def test_online_pick_replays_the_causal_rule_up_to_the_firing_step():
    from sdd_fast.study.online import online_pick

    # dim constant: lambda 0, the pick is the best relevance up to the firing step
    rows = component_rows([0.1, 0.3, 0.2, 0.5, 0.4], [0.5] * 5)
    assert online_pick(rows, fire_step=20, warmup=0)["step"] == 10
    assert online_pick(rows, fire_step=25, warmup=0)["step"] == 10  # a firing step between checkpoints
    assert online_pick(rows, fire_step=30, warmup=0)["step"] == 30
    assert online_pick(rows, fire_step=None)["step"] == 40  # never fired: the last checkpoint
    assert online_pick(list(reversed(rows)), fire_step=20, warmup=0)["step"] == 10  # rows in any order
    # by hand: r = (1, 3, 2), d = (2, 0, 4): population stds sqrt(2/3), sqrt(8/3) -> lambda 0.5,
    # scores r + 0.5 d = (2, 3, 4) -> step 20; after two rows std 1 / std 1 -> lambda 1,
    # scores (3, 3): the earlier of the tie
    rows = component_rows([1.0, 3.0, 2.0], [2.0, 0.0, 4.0])
    assert online_pick(rows, fire_step=20, warmup=0)["step"] == 20
    assert online_pick(rows, fire_step=10, warmup=0)["step"] == 0
    # warm-up 3 covers all three rows: plain DSE weight 1, scores (3, 3, 6)
    assert online_pick(rows, fire_step=20, warmup=3)["step"] == 20
    # smoothing 2 (median of 2 = mean): lambda 0.5 scores (2, 3, 4) -> smoothed (2, 2.5, 3.5)
    assert online_pick(rows, fire_step=20, warmup=0, smoothing=2)["step"] == 20
    assert online_pick([], fire_step=None) is None


def test_alarm_result_reads_the_first_warn_row(tmp_path):
    from sdd_fast.study.online import alarm_result, first_alarm_step
    from sdd_fast.utils.jsonl import append_jsonl

    for step, alarm in ((5, None), (10, None), (15, "warn"), (20, None), (25, "warn")):
        append_jsonl(tmp_path / "metrics.jsonl", {"step": step, **({"alarm": alarm} if alarm else {})})
    assert first_alarm_step(tmp_path) == 15
    assert first_alarm_step(tmp_path / "none") is None
    rows = component_rows([0.1, 0.3, 0.2, 0.5], [0.5] * 4)
    offline = {"selected_step": 30, "selected_miou": 0.13, "last_step": 30, "last_miou": 0.13,
               "best_step": 30, "best_miou": 0.13}
    result = alarm_result(tmp_path, rows, offline, warmup=0)
    assert (result["fire_step"], result["online_step"], result["online_miou"]) == (15, 10, rows[1]["miou"])
    assert (result["peak_step"], result["offline_step"]) == (30, 30)


@pytest.mark.parametrize("method_name, size", [("mocov3", 32), ("mae", 64)])  # MAE: 16 visible patches at 64
def test_grad_norm_ratio_scales_linearly_with_beta(method_name, size, one_thread):
    """The SSL loss's gradient does not depend on beta; the DSE term's is beta x that of DSE."""
    from sdd_fast import dse
    from sdd_fast.study.gradnorm import grad_norm_ratio
    from sdd_fast.train.config import TrainConfig
    from sdd_fast.train.methods import build_method

    torch.manual_seed(0)
    method = build_method(TrainConfig(out="unused", method=method_name, img_size=size))
    method.train()
    images = torch.randint(0, 256, (8, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    views = method.make_transform()(images)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    small, large = grad_norm_ratio(method, views, 0.01), grad_norm_ratio(method, views, 0.5)
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # state restored
    assert small["loss_grad"] == pytest.approx(large["loss_grad"], rel=1e-6) and small["loss_grad"] > 0
    assert large["ratio"] == pytest.approx(50 * small["ratio"], rel=1e-4) and small["ratio"] > 0
    method.zero_grad(set_to_none=True)
    dse(method(views, 0).student_patches).dse.backward()
    norm = float(torch.cat([p.grad.flatten() for p in method.student.parameters() if p.grad is not None]).norm())
    assert large["reg_grad"] == pytest.approx(0.5 * norm, rel=1e-4)


@pytest.mark.slow
def test_quick_study_over_seeds_follows_from_its_rows(quick_study):
    """The over-seeds sections: two seeds per method; each tau mean is the mean of the per-seed
    tau-b of the rows, each gain the mean of the per-seed gains; the alarm's firing step is the
    first `alarm` row of metrics.jsonl and the online pick the replay over the rows; the sweep's
    changes are paired by seed; study.md has every section."""
    from sdd_fast.study.online import online_pick

    summary, out = quick_study.summary, quick_study.out
    plan, over = summary["plan"], summary["over_seeds"]
    assert over["seeds"] == [0, 1] and plan["betas"] == [0.0, 0.1]
    for method, part in summary["methods"].items():
        seeds = part["seeds"]
        assert [s["seed"] for s in seeds] == [0, 1]
        assert seeds[0]["rows"] == part["rows"]
        for key in METRICS:
            taus = [kendall_tau_b([r[key] for r in s["rows"]], [r["miou"] for r in s["rows"]]) for s in seeds]
            taus = [t for t in taus if t is not None]
            entry = over["tau"][key][method]
            if taus:
                assert entry["mean"] == pytest.approx(sum(taus) / len(taus), abs=1e-12), (method, key)
        gains = [s["selection"]["selected_miou"] - s["selection"]["last_miou"] for s in seeds]
        assert over["selection"]["selected_minus_last"][method]["mean"] == pytest.approx(sum(gains) / 2, abs=1e-12)
        for s in seeds:
            root = out / method / ("train" if s["seed"] == 0 else f"seed{s['seed']}/train")
            rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
            fired = [r["step"] for r in rows if r.get("alarm") == "warn"]
            alarm = s["alarm"]
            assert alarm["fire_step"] == (min(fired) if fired else None), (method, s["seed"])
            pick = online_pick(s["rows"], alarm["fire_step"], plan["online_warmup"], plan["online_smoothing"])
            assert (alarm["online_step"], alarm["online_miou"]) == (pick["step"], pick["miou"])
            assert alarm["offline_step"] == s["selection"]["selected_step"]
        runs = [r for r in over["alarm"]["runs"] if r["method"] == method]
        assert [r["seed"] for r in runs] == [0, 1]
    assert over["alarm"]["total"] == 8 and over["alarm"]["fired"] == sum(r["fired"] for r in over["alarm"]["runs"])
    for start in ("scratch", "selected"):
        assert set(over["sweep"][start]) == {"mocov3", "mae"}
        for method, table in over["sweep"][start].items():
            seeds = [s["sweep"][start] for s in summary["methods"][method]["seeds"]]
            deltas = [s["0.1"]["miou"] - s["0"]["miou"] for s in seeds]
            assert table["0.1"]["delta"]["mean"] == pytest.approx(sum(deltas) / 2, abs=1e-12)
            assert table["0"]["delta"]["mean"] == 0.0
            ratios = [s["0.1"]["grad"][-1]["ratio"] for s in seeds]
            assert all(r > 0 and math.isfinite(r) for r in ratios)
            assert table["0.1"]["ratio_last"]["mean"] == pytest.approx(sum(ratios) / 2, rel=1e-12)
            assert all(s["0.1"]["grad"][-1]["step"] == s["0.1"]["step"] for s in seeds)
    for method in ("dino", "ibot"):
        assert summary["methods"][method]["sweep"] is None
    for seed in (0, 1):  # beta 0 from step 0 is the training run itself
        part = summary["methods"]["mae"]["seeds"][seed]
        assert part["sweep"]["scratch"]["0"]["miou"] == part["rows"][-1]["miou"]
        grads = json.loads((out / "mae" / ("" if seed == 0 else f"seed{seed}") / "sweep" / "scratch_beta0.1"
                            / "grad_norms.json").read_text())
        assert len(grads) == 2  # the cache: first and last checkpoint
    text = quick_study.text
    for heading in ("Over training seeds", "degradation alarm", "Regulariser sweep", "mocov3, from step 0",
                    "mae, from the selected checkpoint"):
        assert heading in text, heading
