"""`make demo`: train DINO on the embedded data with per-step DSE, then evaluate, select, report.

    python -m sdd_fast.cli.demo [--out runs/demo] [--steps 400] [--device cpu|cuda]

1. `sdd-fast train`  DINO on the procedurally generated scenes, DSE of the teacher's patch
   tokens every step (OUT/metrics.jsonl), a checkpoint every `--save-every` steps;
2. `sdd-fast eval`   dense linear-probe mIoU (with labels, to check) and DSE on fixed images
   for every checkpoint (OUT/eval.jsonl);
3. `sdd-fast select` the label-free checkpoint choice;
4. `sdd-fast report` OUT/report.png and OUT/report.md.
Run it again and finished parts are reused (the run resumes; evaluated checkpoints are skipped,
unless a newer version evaluates with other settings: then they are evaluated again).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import main as cli


def main(argv=None) -> int:
    """Runs the four steps; returns the exit code of the first that fails."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    parser.add_argument("--method", default="dino", help="dino | ibot | mocov3 | mae (default dino)")
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    parser.add_argument("--save-every", type=int, default=50, help="checkpoint interval (default 50)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = parser.parse_args(argv)

    out = str(Path(args.out))
    device = ["--device", args.device] if args.device else []
    steps = [
        ("train", ["train", "--out", out, "--method", args.method, "--steps", str(args.steps),
                   "--save-every", str(args.save_every), "--resume", *device]),
        ("eval", ["eval", "--run", out, "--redo-stale", *device]),
        ("select", ["select", "--run", out]),
        ("report", ["report", "--run", out]),
    ]
    for name, command in steps:
        start = time.perf_counter()
        print(f"\n=== sdd-fast {' '.join(command)}", flush=True)
        code = cli(command)
        if code:
            return code
        print(f"=== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"\nreport: {Path(out, 'report.png').resolve()}\n        {Path(out, 'report.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
