"""Dense linear-probe mIoU and DSE of every checkpoint of a run.

    sdd-fast eval --run runs/dino                     # the run's own --data (must have masks)
    sdd-fast eval --run runs/dino --data voc:VOCdevkit/VOC2012 --device cuda

Writes OUT/eval.jsonl (one row per checkpoint: step, checkpoint, miou, pixel_acc, dse, inter,
intra_image, intra_batch, dim, dse_seed_sd), rewritten atomically after each checkpoint: run it
again after an interruption and the checkpoints already done are skipped (--force redoes them,
--redo-stale only those computed with other settings).
"""

from __future__ import annotations

from . import UsageError
from .common import add_device_argument, existing_run_dir, positive_int, resolve_device

HELP = "linear-probe mIoU + DSE of every checkpoint of a run (OUT/eval.jsonl)"


def add_arguments(parser) -> None:
    """--run, --data, --device, probe and DSE options, --seed, --force."""
    from ..eval.probe import ProbeOptions

    defaults = ProbeOptions()
    parser.add_argument("--run", required=True, help="run directory written by `sdd-fast train`")
    parser.add_argument("--data", default=None,
                        help="labelled data: synthetic or voc:PATH (default: the run's own --data)")
    add_device_argument(parser)
    parser.add_argument("--probe-epochs", type=positive_int, default=defaults.epochs,
                        help=f"linear-probe epochs over the cached train tokens (default: {defaults.epochs})")
    parser.add_argument("--probe-lr", type=float, default=defaults.lr,
                        help=f"linear-probe peak AdamW learning rate (default: {defaults.lr})")
    parser.add_argument("--max-train-images", type=positive_int, default=None,
                        help="probe on the first N train images only (default: all)")
    parser.add_argument("--max-val-images", type=positive_int, default=None,
                        help="score the probe on the first N val images only (default: all)")
    parser.add_argument("--dse-images", type=positive_int, default=256,
                        help="DSE on the first N val images, the same for every checkpoint (default: 256)")
    parser.add_argument("--dse-batch", type=positive_int, default=32,
                        help="images per DSE call; each component is averaged over calls (default: 32)")
    parser.add_argument("--dse-seeds", type=positive_int, default=4,
                        help="k-means seeds 0..N-1 each DSE component is averaged over (default: 4)")
    parser.add_argument("--baselines", action="store_true",
                        help="also measure RankMe (CLS, pooled, dense), alpha-ReQ and LiDAR on the DSE images")
    parser.add_argument("--lidar-views", type=positive_int, default=8,
                        help="augmented views per image for LiDAR (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe's batch order (default: 0)")
    parser.add_argument("--force", action="store_true", help="recompute checkpoints already in eval.jsonl")
    parser.add_argument("--redo-stale", action="store_true",
                        help="recompute them only if eval_config.json records other settings (default: stop "
                             "with an error naming them)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args) -> int:
    """Evaluates the run, then prints step, mIoU and DSE of every checkpoint."""
    from ..eval.evaluate_run import EVAL_FILE, EvalError, evaluate_run
    from ..eval.probe import ProbeOptions
    from ..train.checkpoint import CheckpointError

    run_dir = existing_run_dir(args.run)
    device = resolve_device(args.device)
    if not args.probe_lr > 0:
        raise UsageError(f"--probe-lr must be > 0; got {args.probe_lr}")
    probe = ProbeOptions(epochs=args.probe_epochs, lr=args.probe_lr, max_train_images=args.max_train_images,
                         max_val_images=args.max_val_images)
    try:
        rows = evaluate_run(run_dir, data=args.data, device=device, probe=probe, dse_images=args.dse_images,
                            dse_batch=args.dse_batch, dse_seeds=args.dse_seeds, seed=args.seed,
                            baselines=args.baselines, lidar_views=args.lidar_views, force=args.force,
                            redo_stale=args.redo_stale,
                            progress=args.progress)
    except (EvalError, CheckpointError) as error:
        raise UsageError(str(error)) from None
    print(f"{'step':>8}  {'mIoU':>7}  {'DSE':>8}")
    for row in rows:
        miou = "n/a" if row["miou"] is None else f"{row['miou']:.4f}"
        dse = "n/a" if row["dse"] is None else f"{row['dse']:.4f}"
        print(f"{row['step']:>8}  {miou:>7}  {dse:>8}")
    print(f"wrote {run_dir / EVAL_FILE}")
    return 0
