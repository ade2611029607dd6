"""A run's report: how DSE and its components track linear-probe mIoU (OUT/report.png, report.md).

Reads OUT/eval.jsonl (`sdd-fast eval`), chooses checkpoints without labels (recombined score
and plain DSE), then compares the choice with the last and the best (oracle) checkpoint and
gives Kendall's tau of every metric against mIoU. Plots use matplotlib's object API with
the Agg renderer (no pyplot, no global backend change).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from ..core.options import COMPONENTS, DSE_FIELDS
from ..utils.atomic import atomic_write_bytes
from ..utils.jsonl import read_jsonl
from .checkpoints import DEFAULT_TOP, Selection, kendall_tau, select_checkpoints

METRICS = DSE_FIELDS
PANELS = (("inter", "M_inter (higher: better separated)"),
          ("intra_image", "M_intra_image (lower: tighter)"),
          ("intra_batch", "M_intra_batch (lower: tighter)"),
          ("dim", "M_dim (effective rank)"),
          ("dse", "DSE"),
          ("score", "recombined score P"),
          ("miou", "linear-probe mIoU"))


def as_float(value) -> float:
    """A JSON number as a float; None (a missing value) as NaN."""
    return math.nan if value is None else float(value)


def format_number(value, digits: int = 4, sign: bool = False) -> str:
    """A table cell: `digits` decimals (with a + on positives if `sign`), "n/a" when missing or non-finite."""
    value = as_float(value)
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _steps(selection: Selection) -> str:
    return ", ".join(map(str, selection.steps)) or "none"


def load_eval_rows(run_dir) -> list:
    """OUT/eval.jsonl's rows by step; FileNotFoundError saying how to make it when absent or empty."""
    path = Path(run_dir) / "eval.jsonl"
    rows = read_jsonl(path)
    if not rows:
        raise FileNotFoundError(f"{path} is missing or empty: run `sdd-fast eval --run {run_dir}` first")
    return sorted(rows, key=lambda row: row["step"])


def summarize(rows: list, top: int = DEFAULT_TOP) -> dict:
    """Selections, Kendall taus and the reference checkpoints of eval rows.

    Args:
        rows: eval.jsonl rows by step (step, miou, dse, inter, intra_image, intra_batch, dim).

    Returns:
        {"recombined": Selection, "plain": Selection, "tau": {metric: tau vs mIoU},
         "last": row, "best": row with the highest mIoU (None if no mIoU)}.
    """
    recombined = select_checkpoints(rows, top=top, recombine=True)
    plain = select_checkpoints(rows, top=top, recombine=False)
    miou = [as_float(row.get("miou")) for row in rows]
    tau = {"recombined score P": kendall_tau(recombined.scores, miou)}
    tau.update({key: kendall_tau([as_float(row.get(key)) for row in rows], miou) for key in METRICS})
    finite = [i for i, value in enumerate(miou) if math.isfinite(value)]
    best = rows[max(finite, key=lambda i: (miou[i], -i))] if finite else None
    return {"recombined": recombined, "plain": plain, "tau": tau, "last": rows[-1], "best": best}


def render_markdown(rows: list, summary: dict, title: str, settings: dict = None) -> str:
    """report.md text: selection vs last / best, Kendall taus, the table of rows."""
    recombined: Selection = summary["recombined"]
    plain: Selection = summary["plain"]
    by_step = {row["step"]: row for row in rows}
    best = summary["best"]
    best_miou = as_float(best["miou"]) if best else math.nan

    def line(label, step):
        if step is None:
            return f"| {label} | n/a | n/a | n/a |"
        miou = as_float(by_step[step].get("miou"))
        gap = miou - best_miou if math.isfinite(miou) and math.isfinite(best_miou) else math.nan
        return f"| {label} | {step} | {format_number(miou)} | {format_number(gap)} |"

    first = lambda sel: sel.steps[0] if sel.steps else None  # noqa: E731
    out = [f"# DSE report: {title}", ""]
    out.append(f"{len(rows)} checkpoints (steps {rows[0]['step']} to {rows[-1]['step']}) from eval.jsonl."
               + (f" Probe data: `{settings['data']}`." if settings and "data" in settings else ""))
    out += ["", "## Checkpoint selection (no labels used)", "",
            "| checkpoint | step | mIoU | mIoU - best |", "| --- | ---: | ---: | ---: |",
            line(f"selected: recombined score, lambda = {recombined.lambda_:.4g}", first(recombined)),
            line("selected: plain DSE", first(plain)),
            line("last", summary["last"]["step"]),
            line("best (oracle, uses labels)", best["step"] if best else None), "",
            f"Recombined top-{len(recombined.steps)}: steps {_steps(recombined)}. "
            f"Plain DSE top-{len(plain.steps)}: steps {_steps(plain)}.", "",
            "## Kendall's tau with mIoU over the run", "",
            "| metric | tau-b |", "| --- | ---: |"]
    out += [f"| {name} | {format_number(tau, 3)} |" for name, tau in summary["tau"].items()]
    out += ["", "A good intra component falls as mIoU rises: expect a negative tau for intra_image / "
            "intra_batch.", *_seed_spread(rows, settings), "", "## Checkpoints", "",
            "| step | mIoU | pixel acc | DSE | P | inter | intra_image | intra_batch | dim | selected |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for i, row in enumerate(rows):
        marks = [name for name, sel in (("P", recombined), ("DSE", plain)) if i in sel.indices]
        cells = [format_number(row.get(key)) for key in ("miou", "pixel_acc", "dse")]
        cells.append(format_number(recombined.scores[i]))
        cells += [format_number(row.get(key)) for key in COMPONENTS]
        out.append(f"| {row['step']} | " + " | ".join(cells) + f" | {', '.join(marks)} |")
    return "\n".join(out) + "\n"


def _seed_spread(rows: list, settings: dict = None) -> list:
    """report.md lines comparing DSE's k-means seed spread (eval's dse_seed_sd) with its range
    over the run: a tau is only as firm as that ratio is small. Empty without the spread."""
    spread = [as_float(row.get("dse_seed_sd")) for row in rows]
    dse = [as_float(row.get("dse")) for row in rows]
    spread, dse = [v for v in spread if math.isfinite(v)], [v for v in dse if math.isfinite(v)]
    if not spread or not dse:
        return []
    seeds = settings.get("dse_seeds") if settings else None
    if seeds == 1:
        return ["", "DSE comes from one k-means seed; `sdd-fast eval --dse-seeds 4` averages over 4 and "
                "measures how much the partitions move it."]
    return ["", f"DSE is averaged over {seeds or 'several'} k-means seeds; their spread (std) is "
            f"{format_number(sum(spread) / len(spread))} per checkpoint on average, against a DSE range of "
            f"{format_number(max(dse) - min(dse))} over the run."]


def plot_report(rows: list, summary: dict, title: str):
    """matplotlib Figure: one panel per metric over steps (selected checkpoints as vertical
    lines: red = recombined, grey = plain DSE), and DSE against mIoU."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    steps = [row["step"] for row in rows]
    recombined, plain = summary["recombined"], summary["plain"]
    columns = {key: [as_float(row.get(key)) for row in rows] for key in METRICS + ("miou",)}
    columns["score"] = recombined.scores
    fig = Figure(figsize=(17, 7.5), layout="constrained")
    axes = fig.subplots(2, 4).ravel()
    for ax, (key, label) in zip(axes, PANELS):
        ax.plot(steps, columns[key], marker="o", markersize=3, color="tab:blue")
        for rank, step in enumerate(plain.steps):
            ax.axvline(step, color="grey", linestyle=":", alpha=0.8,
                       label="plain DSE pick" if rank == 0 else None)
        for rank, step in enumerate(recombined.steps):
            ax.axvline(step, color="tab:red", linestyle="-" if rank == 0 else "--", alpha=0.7,
                       label="recombined pick" if rank == 0 else None)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
        ax.ticklabel_format(axis="y", useOffset=False)  # values, not "1e-6 + 0.0763"
        ax.grid(alpha=0.3)
    if summary["best"] is not None:
        axes[6].plot([summary["best"]["step"]], [summary["best"]["miou"]], marker="*", markersize=14,
                     color="tab:green", linestyle="none", label="best mIoU")
    axes[6].legend(fontsize=8)
    ax = axes[7]
    points = ax.scatter(columns["dse"], columns["miou"], c=steps, cmap="viridis")
    fig.colorbar(points, ax=ax, label="step")
    ax.set_title(f"mIoU vs DSE (Kendall tau {format_number(summary['tau']['dse'], 3)})", fontsize=10)
    ax.set_xlabel("DSE")
    ax.set_ylabel("mIoU")
    ax.ticklabel_format(useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: lambda = {recombined.lambda_:.4g}")
    return fig


def write_report(run_dir, top: int = DEFAULT_TOP) -> tuple:
    """Writes OUT/report.png and OUT/report.md atomically; returns their paths.

    Raises:
        FileNotFoundError: OUT/eval.jsonl is missing or empty.
    """
    run_dir = Path(run_dir)
    rows = load_eval_rows(run_dir)
    summary = summarize(rows, top)
    settings_path = run_dir / "eval_config.json"
    settings = json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.is_file() else None
    title = run_dir.resolve().name
    png, md = run_dir / "report.png", run_dir / "report.md"
    buffer = io.BytesIO()
    plot_report(rows, summary, title).savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(png, lambda f: f.write(buffer.getvalue()))
    text = render_markdown(rows, summary, title, settings)
    atomic_write_bytes(md, lambda f: f.write(text.encode("utf-8")))
    return png, md
