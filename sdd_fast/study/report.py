"""DIR/study.json, study.md (tables) and study.png (curves and taus) of a finished study."""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..selection.run_report import as_float
from ..selection.run_report import format_number as _fmt
from ..utils.atomic import atomic_write_bytes
from ..utils.jsonl import write_json
from .cotap import render_cotap
from .plan import METRICS
from .report_seeds import render_over_seeds

LABELS = {"dse": "DSE", "score_p": "DSE recombined P", "dense_rankme": "dense RankMe", "rankme_cls": "RankMe (CLS)",
          "rankme_pooled": "RankMe (pooled)", "alpha_req": "alpha-ReQ", "lidar": "LiDAR"}


def _tau(value) -> str:
    return _fmt(value, 3, sign=True)


def render_markdown(summary: dict) -> str:
    """study.md: Kendall tau, selection and regularisation tables (first seed), the over-seeds
    sections (report_seeds.py), settings."""
    methods, plan = summary["methods"], summary["plan"]
    names = list(methods)
    out = ["# sdd-fast study: does DSE predict dense quality?", "",
           f"{len(names)} methods x {plan['steps']} steps, a checkpoint every "
           f"{max(1, plan['steps'] // plan['checkpoints'])} steps; linear-probe mIoU on the embedded val split"
           + (" (--quick: smoke-test sizes, the numbers mean nothing)" if plan.get("quick_mode") else "") + "."
           + (f" The tables down to the regularisation are those of the first training seed ({plan['seed']}); "
              "the means over seeds follow them." if plan.get("seeds", 1) > 1 else ""), "",
           "## Kendall tau against linear-probe mIoU (over checkpoints)", "",
           "| metric | " + " | ".join(names) + " | average |", "|---" * (len(names) + 2) + "|"]
    for key in METRICS:
        cells = [_tau(methods[m]["tau"][key]) for m in names] + [_tau(summary["average"]["tau"][key])]
        out.append(f"| {LABELS[key]} | " + " | ".join(cells) + " |")
    out += ["", "## Label-free checkpoint selection (DSE recombined score, top 1)", "",
            "| method | selected step | mIoU selected | last step | mIoU last | best step | mIoU best |",
            "|---|---|---|---|---|---|---|"]
    for m in names:
        s = methods[m]["selection"]
        out.append(f"| {m} | {s['selected_step']} | {_fmt(s['selected_miou'])} | {s['last_step']} | "
                   f"{_fmt(s['last_miou'])} | {s['best_step']} | {_fmt(s['best_miou'])} |")
    avg = summary["average"]
    out += ["", "Average mIoU gain of the selected over the last checkpoint: "
            f"{_fmt(avg['selected_minus_last'], sign=True)}; gap to the best (oracle): "
            f"{_fmt(avg['best_minus_selected'], sign=True)}.", "",
            "## Regularisation: branches from the selected checkpoint", ""]
    beta = plan["reg_beta"]
    out += [f"| method | from step | steps | final mIoU, beta 0 | final mIoU, beta {beta:g} | DSE, beta 0 | "
            f"DSE, beta {beta:g} |", "|---|---|---|---|---|---|---|"]
    for m in names:
        r = methods[m]["regularization"]
        plain, reg = r["branches"]["0"], r["branches"][f"{beta:g}"]
        out.append(f"| {m} | {r['from_step']} | {r['steps']} | {_fmt(plain['miou'])} | {_fmt(reg['miou'])} | "
                   f"{_fmt(plain['dse'])} | {_fmt(reg['dse'])} |")
    out += ["", f"Average final-mIoU change from the regulariser: {_fmt(avg['regularized_minus_plain'], sign=True)}."]
    if summary.get("over_seeds"):
        out += render_over_seeds(summary, LABELS)
    out += render_cotap(methods)
    out += ["", f"This invocation took {summary['seconds']:.0f} s (parts reused from an earlier one not counted) on "
            f"{summary['machine']['cpu']} ({summary['machine']['torch_threads']} torch threads, "
            f"device {summary['machine']['device']}, torch {summary['machine']['torch']})."]
    return "\n".join(out) + "\n"


def plot_study(summary: dict):
    """matplotlib Figure: per method mIoU and min-max-scaled metrics over steps; average taus."""
    from matplotlib.figure import Figure

    methods = summary["methods"]
    fig = Figure(figsize=(4.2 * (len(methods) + 1), 4), layout="constrained")
    axes = fig.subplots(1, len(methods) + 1, squeeze=False)[0]
    for ax, (name, part) in zip(axes, methods.items()):
        steps = [row["step"] for row in part["rows"]]
        for key in METRICS + ("miou",):
            values = [as_float(row.get(key)) for row in part["rows"]]
            finite = [v for v in values if math.isfinite(v)]
            lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
            scaled = [(v - lo) / (hi - lo) if hi > lo else 0.5 for v in values]
            style = dict(color="black", linewidth=2.5) if key == "miou" else dict(linewidth=1, alpha=0.8)
            ax.plot(steps, scaled, marker="o", markersize=2, label=LABELS.get(key, "mIoU"), **style)
        ax.axvline(part["selection"]["selected_step"], color="tab:red", linestyle="--", label="DSE pick")
        ax.set_title(f"{name} (min-max scaled)", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    taus = [summary["average"]["tau"][key] for key in METRICS]
    ax.barh([LABELS[key] for key in METRICS], [t if math.isfinite(t) else 0.0 for t in taus],
            color=["tab:red" if key in ("dse", "score_p") else "tab:grey" for key in METRICS])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-1, 1)
    ax.set_title("average Kendall tau vs mIoU", fontsize=10)
    return fig


def _write_png(path: Path, figure) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, lambda f: f.write(buffer.getvalue()))


def write_study(out: Path, summary: dict) -> tuple:
    """Writes DIR/study.json, study.md, study.png and alarm.png atomically; returns their paths."""
    from .figure_alarm import plot_alarm

    paths = out / "study.json", out / "study.md", out / "study.png", out / "alarm.png"
    write_json(paths[0], summary)
    text = render_markdown(summary)
    atomic_write_bytes(paths[1], lambda f: f.write(text.encode("utf-8")))
    _write_png(paths[2], plot_study(summary))
    runs = {name: (out / name / "train", part["rows"]) for name, part in summary["methods"].items()}
    _write_png(paths[3], plot_alarm(runs))
    return paths
