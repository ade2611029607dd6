"""Train a ViT with a self-supervised method, watching DSE every step.

    sdd-fast train --out runs/dino --method dino --steps 300
    sdd-fast train --out runs/dino --resume                     # continue after an interruption
    sdd-fast train --out runs/dino --on-degrade stop            # stop when the DSE score degrades
    torchrun --nproc_per_node=2 -m sdd_fast.cli train --out runs/ddp ...

Writes OUT/config.json, OUT/metrics.jsonl (one row per logged step: step, loss, lr, dse,
inter, intra_image, intra_batch, dim, dse_ms, step_ms) and OUT/checkpoints/step_XXXXXX.pt.

--on-degrade warn|stop|rollback watches the smoothed recombined DSE score (SPEC "Model
selection", computed causally) and acts when it stays below its best checkpoint's by more
than --alarm-margin stds for --alarm-patience evaluations: warn adds `alarm` to that
metrics.jsonl row; stop saves a checkpoint, writes OUT/alarm.json and exits with code 3;
rollback reloads the best checkpoint and goes on with --rollback-lr-scale / --rollback-dse-beta
(at most --max-rollbacks times). Every action is listed in OUT/alarm.json.

Exit codes: 0 done, 2 a bad option or run directory, 3 stopped by --on-degrade stop
(--resume continues it). Under torchrun every rank stops at the same step and exits 3; the
launcher reports that as a worker failure ("exitcode: 3", its own code 1): OUT/alarm.json
says "stopped": true.
"""

from __future__ import annotations

import argparse
import dataclasses

from ..train.config import TrainConfig
from . import UsageError

HELP = "train an SSL method (dino, ibot, mocov3, mae) with per-step DSE monitoring"


def add_arguments(parser) -> None:
    """One option per TrainConfig field, with its default and help."""
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        if meta.get("flag"):
            if f.default:  # on by default: --no-NAME is the option; its help says what turning it off does
                parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                    default=True, help=meta["help"])
                parser.add_argument(flag, dest=f.name, action="store_true", help=argparse.SUPPRESS)
            else:
                parser.add_argument(flag, dest=f.name, action="store_true", help=meta["help"])
            continue
        kind = {int: int, float: float}.get(type(f.default), str)
        parser.add_argument(flag, dest=f.name, type=kind, default=f.default, choices=meta.get("choices"),
                            required=f.name == "out",
                            help=f"{meta['help']} (default: {f.default})" if f.default not in ("", None)
                            else meta["help"])


def run(args) -> int:
    """Validates the options, then trains (or resumes); returns the exit code (3: stopped by
    --on-degrade stop, with a checkpoint and OUT/alarm.json)."""
    from ..data import parse_data
    from ..train.checkpoint import CheckpointError
    from ..train.degrade import STOP_EXIT_CODE
    from ..train.loop import TrainingError, train
    from .common import resolve_device

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**values)
    try:
        config.validate()
        parse_data(config.data)
        # --dse-every 0 with --dse-beta 0 trains without DSE: any device with a GPU will do.
        resolve_device(config.device, dse=config.dse_every > 0 or config.dse_beta > 0)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:
        summary = train(config)
    except (TrainingError, CheckpointError) as error:
        raise UsageError(str(error)) from None
    return STOP_EXIT_CODE if "stopped_at" in summary else 0
