"""Plot and summarise how DSE tracks linear-probe mIoU over a run.

    sdd-fast eval --run runs/dino && sdd-fast report --run runs/dino

Writes OUT/report.png (inter, intra_image, intra_batch, dim, DSE, recombined score and mIoU
over steps, selected checkpoints marked) and OUT/report.md (selected vs last vs best
checkpoint, Kendall's tau of every metric with mIoU, the table of checkpoints).
"""

from __future__ import annotations

from . import UsageError
from .common import existing_run_dir, positive_int

HELP = "OUT/report.png + OUT/report.md from OUT/eval.jsonl"


def add_arguments(parser) -> None:
    """--run, --top."""
    parser.add_argument("--run", required=True, help="run directory evaluated by `sdd-fast eval`")
    parser.add_argument("--top", type=positive_int, default=3, help="checkpoints to select (default: 3)")


def run(args) -> int:
    """Writes the report files and prints their paths."""
    from ..selection.run_report import write_report

    run_dir = existing_run_dir(args.run)
    try:
        png, md = write_report(run_dir, top=args.top)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise UsageError(str(error)) from None
    print(png)
    print(md)
    return 0
