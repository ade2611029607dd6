"""Choose checkpoints without labels (SPEC "Model selection").

    sdd-fast select --run runs/dino                  # top 3 by the recombined score
    sdd-fast select --run runs/dino --json           # one JSON object on stdout, for scripts
    sdd-fast select --run runs/dino --plain-dse      # rank by the plain per-call DSE instead

Reads OUT/eval.jsonl (`sdd-fast eval`) when present, else the DSE logged during training in
OUT/metrics.jsonl (restricted to checkpointed steps when there are any).
"""

from __future__ import annotations

import json
import math

from . import UsageError
from .common import existing_run_dir, positive_int

HELP = "choose checkpoints by DSE, without labels"


def add_arguments(parser) -> None:
    """--run, --top, --json, --plain-dse."""
    parser.add_argument("--run", required=True, help="run directory (with eval.jsonl or metrics.jsonl)")
    parser.add_argument("--top", type=positive_int, default=3,
                        help="checkpoints to return at most (default: 3)")
    parser.add_argument("--json", action="store_true", help="print only one JSON object on stdout")
    parser.add_argument("--plain-dse", action="store_true",
                        help="rank by the plain DSE (lambda = 1) instead of the recombined score")


def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(args) -> int:
    """Selects and prints the chosen steps (a table, or JSON with --json)."""
    from ..selection.checkpoints import load_series, select_checkpoints
    from ..train.checkpoint import checkpoint_path

    run_dir = existing_run_dir(args.run)
    try:
        rows, source = load_series(run_dir)
        selection = select_checkpoints(rows, top=args.top, recombine=not args.plain_dse)
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise UsageError(str(error)) from None
    paths = [checkpoint_path(run_dir, step) for step in selection.steps]
    checkpoints = [p.relative_to(run_dir).as_posix() if p.is_file() else None for p in paths]
    by_step = {row["step"]: row for row in rows}
    if args.json:
        out = {"run": str(run_dir), "source": source, "method": "dse" if args.plain_dse else "recombined",
               **selection.to_dict(), "steps": [row["step"] for row in rows], "checkpoints": checkpoints}
        if all("miou" in by_step[s] for s in selection.steps):
            out["miou"] = [_clean(by_step[s]["miou"]) for s in selection.steps]
        print(json.dumps(out))
        return 0
    method = "plain DSE" if args.plain_dse else f"recombined score (lambda = {selection.lambda_:.4g})"
    print(f"{run_dir}: {len(rows)} checkpoints from {source}; ranked by {method}")
    print(f"{'rank':>4}  {'step':>8}  {'score':>9}  {'mIoU':>7}  checkpoint")
    for rank, (index, step, path) in enumerate(zip(selection.indices, selection.steps, checkpoints), 1):
        miou = by_step[step].get("miou")
        miou = "-" if miou is None else f"{miou:.4f}"
        print(f"{rank:>4}  {step:>8}  {selection.scores[index]:>9.4f}  {miou:>7}  {path or '(not saved)'}")
    if not selection.steps:
        print("no checkpoint has finite scores")
    return 0
