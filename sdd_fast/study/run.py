"""Runs a study: per method and training seed, train (with the alarm on `warn`) -> evaluate
(probe + DSE + baselines) -> select -> branch with and without the DSE regulariser -> evaluate
the branches; for the sweep methods, the regulariser sweep (sweep.py); then the means over seeds
with bootstrap intervals (aggregate.py) and DIR/study.{json,md,png}.

Every stage resumes: training runs resume from their checkpoints, evaluations skip the
checkpoints already in eval.jsonl, gradient norms are cached per checkpoint, so `sdd-fast study`
run again after an interruption goes on where it stopped. Layout: ROOT/train,
ROOT/branch_beta<B>, ROOT/sweep/scratch_beta<B>, where ROOT is DIR/<method> for the first seed
and DIR/<method>/seed<N> for the others.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..selection.checkpoints import kendall_tau
from ..selection.run_report import as_float, summarize
from .plan import METRICS, StudyPlan


def seed_root(plan: StudyPlan, method: str, seed: int) -> Path:
    """DIR/<method> for the first seed (the layout of single-seed studies), else DIR/<method>/seed<N>."""
    root = Path(plan.out) / method
    return root if seed == plan.seed else root / f"seed{seed}"


def _train(plan: StudyPlan, method: str, run_dir: Path, progress: bool, seed: int = None, **options) -> None:
    from ..train.config import TrainConfig
    from ..train.loop import train

    values = dict(out=str(run_dir), method=method, steps=plan.steps, batch_size=plan.batch_size, lr=plan.lr,
                  seed=plan.seed if seed is None else seed, device=plan.device, save_every=plan.save_every,
                  progress=progress, resume=True)
    values.update(plan.train_options)
    values.update(options)
    train(TrainConfig(**values))


def _evaluate(plan: StudyPlan, run_dir: Path, progress: bool) -> list:
    from ..eval.evaluate_run import evaluate_run
    from ..eval.probe import ProbeOptions

    probe = ProbeOptions(epochs=plan.probe_epochs, max_train_images=plan.probe_train_images,
                         max_val_images=plan.probe_val_images)
    return evaluate_run(run_dir, device=plan.device, probe=probe, dse_images=plan.dse_images,
                        dse_batch=min(32, plan.dse_images), dse_seeds=plan.dse_seeds, seed=plan.seed, baselines=True,
                        lidar_views=plan.lidar_views, progress=progress)


def study_seed(plan: StudyPlan, method: str, seed: int, progress: bool = True) -> dict:
    """One method and training seed (see the module docstring); returns its summary dict:
    rows, tau, selection, regularization, alarm, sweep (None unless a sweep method), cotap (None
    unless a CoTAP method and the first seed), seconds."""
    from .cotap import cotap_comparison
    from .online import alarm_result
    from .sweep import sweep_method

    start = time.perf_counter()
    root = seed_root(plan, method, seed)
    train_dir = root / "train"
    _train(plan, method, train_dir, progress, seed=seed, on_degrade="warn")
    rows = _evaluate(plan, train_dir, progress)
    summary = summarize(rows, top=1)  # the run report's selection, last and best checkpoints
    selection, last = summary["recombined"], summary["last"]
    best = summary["best"] or last  # no finite mIoU at all: nothing is better than the last
    for row, score in zip(rows, selection.scores):
        row["score_p"] = score
    miou = [as_float(row["miou"]) for row in rows]
    tau = {key: kendall_tau([as_float(row.get(key)) for row in rows], miou) for key in METRICS}
    chosen = rows[selection.indices[0]] if selection.indices else last

    branches = {}
    for beta in (0.0, plan.reg_beta):
        final = branch(plan, method, seed, train_dir, chosen, beta, progress)
        branches[f"{beta:g}"] = {"beta": beta, "step": final["step"], "miou": final["miou"], "dse": final["dse"]}
    selected = {"selected_step": chosen["step"], "selected_miou": chosen["miou"],
                "last_step": last["step"], "last_miou": last["miou"],
                "best_step": best["step"], "best_miou": best["miou"], "lambda": selection.lambda_}
    sweep = sweep_method(plan, method, seed, train_dir, rows, chosen, progress) if method in plan.swept else None
    cotap = (cotap_comparison(plan, method, train_dir, progress)
             if seed == plan.seed and method in plan.cotap_runs else None)
    return {
        "seed": seed,
        "rows": rows,
        "tau": tau,
        "selection": selected,
        "regularization": {"from_step": chosen["step"], "steps": plan.branch_steps, "branches": branches},
        "alarm": alarm_result(train_dir, rows, selected, plan.online_warmup, plan.online_smoothing),
        "sweep": sweep,
        "cotap": cotap,
        "seconds": time.perf_counter() - start,
    }


def branch(plan: StudyPlan, method: str, seed: int, train_dir: Path, chosen: dict, beta: float,
           progress: bool) -> dict:
    """Trains (or resumes) ROOT/branch_beta<beta> from the chosen checkpoint for branch_steps
    steps with --dse-beta beta, evaluates it; returns its last eval row."""
    branch_dir = train_dir.parent / f"branch_beta{beta:g}"
    _train(plan, method, branch_dir, progress, seed=seed, steps=chosen["step"] + plan.branch_steps, dse_beta=beta,
           save_every=plan.branch_steps, branch_from=str(train_dir / chosen["checkpoint"]))
    return _evaluate(plan, branch_dir, progress)[-1]


def study_method(plan: StudyPlan, method: str, progress: bool = True) -> dict:
    """One method over every training seed: the first seed's summary (rows, tau, selection,
    regularization, alarm, sweep) at the top level, and "seeds": every seed's summary."""
    start = time.perf_counter()
    seeds = [study_seed(plan, method, seed, progress) for seed in plan.seed_values]
    result = dict(seeds[0])
    result.update(seeds=seeds, seconds=time.perf_counter() - start)
    return result


def average(results: dict) -> dict:
    """Mean over methods of every tau and of the selection / regularisation mIoU gaps (NaN-skipping)."""
    def mean(values):
        finite = [v for v in values if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    parts = list(results.values())
    tau = {key: mean([as_float(p["tau"][key]) for p in parts]) for key in METRICS}
    sel = [p["selection"] for p in parts]
    reg = [p["regularization"]["branches"] for p in parts]
    return {
        "tau": tau,
        "selected_minus_last": mean([as_float(s["selected_miou"]) - as_float(s["last_miou"]) for s in sel]),
        "best_minus_selected": mean([as_float(s["best_miou"]) - as_float(s["selected_miou"]) for s in sel]),
        "regularized_minus_plain": mean([as_float(b[k]["miou"]) - as_float(b["0"]["miou"]) for b in reg
                                         for k in b if k != "0"]),
    }


def run_study(plan: StudyPlan, progress: bool = True) -> dict:
    """Runs (or resumes) the whole study and writes DIR/study.json, study.md and study.png.

    Returns:
        {"plan", "machine", "methods": {method: study_method(...)}, "average" (first seed),
         "over_seeds" (means over seeds with bootstrap intervals: aggregate.py), "seconds"}.
    """
    from ..utils.devices import describe_machine
    from .aggregate import aggregate
    from .report import write_study

    plan.validate()
    start = time.perf_counter()
    Path(plan.out).mkdir(parents=True, exist_ok=True)
    results = {}
    for method in plan.methods:
        results[method] = study_method(plan, method, progress)
    summary = {"plan": plan.to_dict(), "machine": describe_machine(plan.device), "methods": results,
               "average": average(results), "over_seeds": aggregate(plan, results),
               "seconds": time.perf_counter() - start}
    write_study(Path(plan.out), summary)
    return summary
