"""DIR/alarm.png: per method (first training seed), the smoothed recombined DSE score the alarm
watched during training with the steps where it fired, and the linear-probe mIoU of the
evaluated checkpoints under it (README "Catch degradation while training")."""

from __future__ import annotations

import math
from pathlib import Path

from ..selection.run_report import as_float
from ..utils.jsonl import read_jsonl


def alarm_series(train_dir: Path) -> tuple:
    """(steps, smoothed scores, firing steps) of a training run's metrics.jsonl."""
    rows = [r for r in read_jsonl(train_dir / "metrics.jsonl") if math.isfinite(as_float(r.get("score")))]
    fired = [int(r["step"]) for r in read_jsonl(train_dir / "metrics.jsonl") if r.get("alarm")]
    return [int(r["step"]) for r in rows], [as_float(r["score"]) for r in rows], fired


def plot_alarm(runs: dict):
    """matplotlib Figure; runs: method -> (train_dir, eval rows)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(runs), 5), layout="constrained")
    axes = fig.subplots(2, len(runs), squeeze=False, sharex="col")
    for col, (name, (train_dir, rows)) in enumerate(runs.items()):
        top, bottom = axes[0][col], axes[1][col]
        steps, scores, fired = alarm_series(Path(train_dir))
        top.plot(steps, scores, color="tab:blue", linewidth=1, label="smoothed score P (training steps)")
        for i, step in enumerate(fired):
            top.axvline(step, color="tab:red", alpha=0.25, linewidth=0.8, label="alarm (warn)" if i == 0 else None)
        if fired:
            top.axvline(fired[0], color="tab:red", linewidth=1.5, label=f"first alarm, step {fired[0]}")
        top.set_title(name, fontsize=10)
        top.grid(alpha=0.3)
        ordered = sorted(rows, key=lambda r: r["step"])
        bottom.plot([r["step"] for r in ordered], [as_float(r.get("miou")) for r in ordered], marker="o",
                    color="black", label="probe mIoU (checkpoints)")
        if fired:
            bottom.axvline(fired[0], color="tab:red", linewidth=1.5)
        bottom.set_xlabel("step")
        bottom.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    return fig
