"""Does DSE predict dense quality better than RankMe, alpha-ReQ and LiDAR? Train, probe, compare.

    sdd-fast study --out runs/study                               # the full study (hours on 2 CPU cores)
    sdd-fast study --out runs/quick --quick                       # a few minutes: checks that it all runs
    sdd-fast study --out runs/study --methods dino,mae --steps 300 --checkpoints 10

For each method: train on the embedded data with T checkpoints; at each checkpoint the linear-
probe mIoU, DSE, dense RankMe, RankMe on CLS / pooled tokens, alpha-ReQ and LiDAR; Kendall tau
of each metric against mIoU; the DSE-selected checkpoint against the last and the best; two
branches from the selected checkpoint (--dse-beta 0 and --reg-beta). With --seeds S, all of it
per training seed, and means over seeds with 95 % bootstrap intervals; the alarm (--on-degrade
warn) against the mIoU peak, with its online pick; a --betas sweep of the regulariser on
--sweep-methods from step 0 and from the selected checkpoint; CoTAP continuations of
--cotap-methods against their control. Writes DIR/study.json,
DIR/study.md and DIR/study.png. Run it again after an interruption and finished parts are reused.
"""

from __future__ import annotations

from . import UsageError
from .common import add_device_argument, positive_int, resolve_device

HELP = "DSE vs RankMe / alpha-ReQ / LiDAR over the bundled trainers (DIR/study.{json,md,png})"


def add_arguments(parser) -> None:
    """--out, --methods, --steps, --checkpoints, --quick and the study's other settings."""
    from ..study.plan import StudyPlan

    full = StudyPlan(out="")
    parser.add_argument("--out", required=True, help="study directory")
    parser.add_argument("--methods", default=None,
                        help=f"comma list of methods (default: {','.join(full.methods)})")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help=f"training steps per method (default: {full.steps}; --quick: 12)")
    parser.add_argument("--checkpoints", type=positive_int, default=None,
                        help=f"evaluated checkpoints per method besides step 0 (default: {full.checkpoints})")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help=f"images per training step (default: {full.batch_size})")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"peak learning rate of every run (default: {full.lr:g})")
    parser.add_argument("--reg-beta", type=float, default=None,
                        help=f"--dse-beta of the regularised branch (default: {full.reg_beta:g})")
    parser.add_argument("--reg-steps", type=positive_int, default=None,
                        help="steps of each branch from the selected checkpoint (default: steps // 3)")
    parser.add_argument("--seed", type=int, default=None, help="first training seed (default: 0)")
    parser.add_argument("--seeds", type=positive_int, default=None,
                        help=f"training seeds per method: seed, seed+1, ... (default: {full.seeds}; --quick: 2)")
    parser.add_argument("--betas", default=None,
                        help="comma list of --dse-beta values of the regulariser sweep, with 0 (default: "
                             f"{','.join(f'{b:g}' for b in full.betas)}; --quick: 0,0.1)")
    parser.add_argument("--sweep-methods", default=None,
                        help=f"comma list of methods of the sweep (default: {','.join(full.sweep_methods)}; "
                             "methods not in --methods are skipped; empty: no sweep)")
    parser.add_argument("--cotap-methods", default=None,
                        help=f"comma list of methods continued with CoTAP and with its control (default: "
                             f"{','.join(full.cotap_methods)}; methods not in --methods are skipped; empty: none)")
    parser.add_argument("--cotap-steps", type=positive_int, default=None,
                        help="steps of each CoTAP continuation (default: steps // 3; --quick: 4)")
    add_device_argument(parser)
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test sizes (a few minutes on 2 CPU cores; the numbers mean nothing)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def run(args) -> int:
    """Builds the plan (checking every option first), runs the study, prints where the outputs are."""
    from ..study import StudyPlan, run_study

    overrides = {key: getattr(args, key) for key in ("steps", "checkpoints", "batch_size", "lr", "reg_beta",
                                                     "reg_steps", "seed", "seeds", "cotap_steps")
                 if getattr(args, key) is not None}
    for key in ("methods", "sweep_methods", "cotap_methods"):
        if getattr(args, key) is not None:
            overrides[key] = tuple(m.strip() for m in getattr(args, key).split(",") if m.strip())
    if args.betas is not None:
        try:
            overrides["betas"] = tuple(float(b) for b in args.betas.split(",") if b.strip())
        except ValueError:
            raise UsageError(f"--betas must be a comma list of numbers; got {args.betas!r}") from None
    overrides["device"] = str(resolve_device(args.device)) if args.device else None
    plan = StudyPlan.quick(args.out, **overrides) if args.quick else StudyPlan(out=args.out, **overrides)
    try:
        plan.validate()
    except ValueError as error:
        raise UsageError(str(error)) from None
    summary = run_study(plan, progress=args.progress)
    tau = summary["average"]["tau"]
    print("average Kendall tau vs mIoU: " + ", ".join(f"{k} {v:+.3f}" for k, v in tau.items()))
    print(f"wrote {args.out}/study.json, study.md, study.png")
    return 0
