"""The study's CoTAP rows: continue a method's first-seed run with CoTAP, and with CoTAP's loss
weight at 0 (the init method alone, with the same schedule, learning rates and steps: the
control, so a gain is not just more training); evaluate both. Layout: DIR/<method>/cotap and
DIR/<method>/cotap_control."""

from __future__ import annotations

from pathlib import Path

FIELDS = ("miou", "dse", "inter", "intra_image", "intra_batch", "dim")


def _pick(row: dict) -> dict:
    return {"step": row["step"], **{key: row.get(key) for key in FIELDS}}


def cotap_comparison(plan, method: str, train_dir: Path, progress: bool) -> dict:
    """Trains (or resumes) both continuations of `train_dir` for plan.cotap_steps_value steps and
    evaluates them; returns {"init_step", "steps", "before", "cotap", "control"} (eval fields of
    the init network and of each run's last checkpoint)."""
    from .run import _evaluate, _train

    steps = plan.cotap_steps_value
    runs = {}
    for name, weight in (("cotap", 1.0), ("control", 0.0)):
        run_dir = train_dir.parent / ("cotap" if name == "cotap" else "cotap_control")
        _train(plan, "cotap", run_dir, progress, steps=steps, init=str(train_dir), cotap_weight=weight,
               save_every=max(1, steps // 2), dse_beta=0.0)
        runs[name] = _evaluate(plan, run_dir, progress)
    before = runs["cotap"][0]  # step 0 of a CoTAP run is the init run's last network
    return {"init_step": _init_step(train_dir), "steps": steps, "before": _pick(before),
            "cotap": _pick(runs["cotap"][-1]), "control": _pick(runs["control"][-1])}


def _init_step(train_dir: Path) -> int:
    from ..train.checkpoint import list_checkpoints

    found = list_checkpoints(train_dir)
    return found[-1][0] if found else 0


def render_cotap(methods: dict) -> list:
    """study.md lines: before / CoTAP / control, mIoU and every DSE component, per method."""
    from ..selection.run_report import format_number as fmt

    parts = {m: p["cotap"] for m, p in methods.items() if p.get("cotap")}
    if not parts:
        return []
    out = ["", "## CoTAP: continuing a run with the continuous-target AP loss (first seed)", "",
           "From each method's last checkpoint, CoTAP (`--method cotap --init`) against the control "
           "(`--cotap-weight 0`: the same continuation without the AP loss).", "",
           "| method | from step | steps | run | mIoU | DSE | inter | intra_image | intra_batch | dim |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for m, c in parts.items():
        for label in ("before", "cotap", "control"):
            row = c[label]
            out.append(f"| {m} | {c['init_step']} | {c['steps'] if label != 'before' else 0} | {label} | "
                       + " | ".join(fmt(row.get(key)) for key in FIELDS) + " |")
    return out
