"""The training loop every bundled SSL method shares.

Reads top to bottom: set-up (device, processes, seed, data, method, optimiser, schedules),
resume, then the steps: forward (+ DSE regulariser), backward with clipping, EMA update,
DSE monitor, log row, checkpoint. The method file supplies only views, heads and loss.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..core.options import DSE_FIELDS
from ..integrations.loggers import make_loggers
from ..integrations.monitor import DSEMonitor
from ..integrations.regularizer import DSERegularizer
from ..utils.atomic import remove_stale_temps
from ..utils.devices import default_device
from ..utils.distributed import init_distributed, shutdown_distributed
from ..utils.jsonl import json_text, write_json
from ..utils.runlock import run_lock
from .checkpoint import (
    CHECKPOINT_FORMAT,
    checkpoint_dir,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig
from .degrade import DegradeControl
from .methods import build_method
from .schedule import cosine_schedule
from .stream import AugmentedStream, step_loader

# Options that define a run: a resumed run must keep them; a branch may change BRANCH_FREE ones.
# The --on-degrade / --alarm-* / --rollback-* options are not among them: what the alarm did is
# in the checkpoint (DegradeControl.state_dict) and is restored whatever they say; they only
# govern what it does next (e.g. --resume a stopped run with --on-degrade none).
RUN_DEFINING = ("method", "data", "arch", "img_size", "steps", "batch_size", "lr", "min_lr", "warmup_steps",
                "weight_decay", "momentum_teacher", "local_crops", "teacher_temp", "aug_group", "mask_ratio", "seed",
                "dse_beta", "init", "cotap_weight", "cotap_backbone_lr_scale", "cotap_neighbours", "cotap_regions",
                "cotap_prototypes", "cotap_foreground", "cotap_theta", "cotap_alpha", "cotap_tau")
BRANCH_FREE = ("steps", "dse_beta")
METRIC_FIELDS = ("step", "loss", "lr") + DSE_FIELDS + ("dse_ms", "step_ms",
                 "data_ms", "reg_dse", "teacher_entropy", "kl", "ap_loss", "base_loss", "score", "alarm")


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, incompatible resume, ...)."""


# ==== set-up helpers ==========================================================================
def amp_dtype(config: TrainConfig, device: torch.device):
    """torch dtype for autocast, or None for full precision."""
    mode = config.amp
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "none"
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def param_groups(module: torch.nn.Module, weight_decay: float) -> list:
    """AdamW groups: no weight decay on biases, norms, tokens and position embeddings; a method
    with `lr_scale(name)` (CoTAP) gets a group per scale ("lr_scale": the loop's lr factor)."""
    scale_of = getattr(module, "lr_scale", lambda name: 1.0)
    groups = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith(".bias") or "token" in name or "pos" in name.split(".")[-1]
        key = (float(scale_of(name)), skip)
        groups.setdefault(key, {"params": [], "weight_decay": 0.0 if skip else weight_decay, "lr_scale": key[0]})
        groups[key]["params"].append(p)
    return [groups[key] for key in sorted(groups, key=lambda key: (-key[0], key[1]))]


def rng_state() -> dict:
    """Every global generator's state (restored on resume)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resumable(config: TrainConfig, saved: dict, path: Path, free: tuple = ()) -> None:
    """TrainingError listing the run-defining options (except `free` ones) that differ from the checkpoint's."""
    saved = TrainConfig.from_dict(saved).to_dict()  # options newer than the checkpoint: their defaults
    diffs = [f"--{k.replace('_', '-')} {saved.get(k)!r} -> {getattr(config, k)!r}"
             for k in RUN_DEFINING if k not in free and saved.get(k) != getattr(config, k)]
    if diffs:
        verb = "branch" if free else "resume"
        raise TrainingError(f"cannot {verb} from {path}: options differ from that run ({'; '.join(diffs)})")


def load_branch_point(config: TrainConfig) -> tuple:
    """(state, path) of the --branch-from checkpoint, checked against `config`."""
    path = Path(config.branch_from)
    state = load_checkpoint(path, map_location="cpu")
    check_resumable(config, state["config"], path, free=BRANCH_FREE)
    if int(state["step"]) >= config.steps:
        raise TrainingError(f"--steps {config.steps} must exceed the step of --branch-from {path} "
                            f"({int(state['step'])})")
    return state, path


def next_batch(batches, last_path) -> list:
    """The next batch of views; a TrainingError naming the resumable checkpoint when the data
    cannot be read (a corrupt or vanished image: fix the data, then --resume)."""
    try:
        return next(batches)
    except (ValueError, OSError) as error:
        raise TrainingError(f"training data: {error} (fix it, then --resume from {last_path})") from None


# ==== the loop ================================================================================
def train(config: TrainConfig) -> dict:
    """Runs (or resumes) one training run; returns {"steps", "last_loss", "checkpoint"}.

    Writes OUT/config.json, OUT/metrics.jsonl (+ csv / tensorboard) and
    OUT/checkpoints/step_XXXXXX.pt (step 0, every `save_every` steps, and the last step).
    """
    from ..data import parse_data, train_images  # heavy imports (torchvision) only when training

    config.validate()
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file, not a directory")
    device = default_device(config.device)
    dist_info, device = init_distributed(device)
    try:
        with contextlib.ExitStack() as held:
            if dist_info.is_main:  # one writer per run directory (only the main process writes)
                out.mkdir(parents=True, exist_ok=True)
                held.enter_context(run_lock(out, "train"))
                # temp files of a train process killed mid-write (eval's files have their own lock)
                remove_stale_temps(out, ("config.json", "metrics.*"))
                remove_stale_temps(checkpoint_dir(out), ("step_*.pt",))
            return _train(config, out, device, dist_info, parse_data, train_images)
    finally:
        shutdown_distributed()


def fresh_start_check(out: Path, is_main: bool) -> None:
    """Before a run without --resume: TrainingError when OUT holds training progress.

    A directory holding only one checkpoint (the initial network a failed first attempt
    saved before its first step, e.g. with a bad option) holds no progress: its checkpoint
    is deleted, so the fixed rerun starts over instead of being refused.
    """
    found = list_checkpoints(out)
    if len(found) > 1:
        raise TrainingError(f"{out} already holds checkpoints; pass --resume to continue it, or another --out")
    if found and is_main:
        print(f"sdd-fast train: {out} held only its initial checkpoint ({found[0][1].name}); starting over",
              file=sys.stderr)
        found[0][1].unlink(missing_ok=True)


def _train(config, out, device, dist_info, parse_data, train_images) -> dict:
    # ---- resume or fresh start ---------------------------------------------------------------
    resume_from = latest_checkpoint(out) if config.resume else None
    if not config.resume:
        fresh_start_check(out, dist_info.is_main)
    state, branched = None, None
    if resume_from is not None:
        state = load_checkpoint(resume_from, map_location="cpu")
        check_resumable(config, state["config"], resume_from)
    elif config.branch_from:
        state, branched = load_branch_point(config)

    # ---- data, method, optimiser, schedules ----------------------------------------------------
    source = parse_data(config.data)
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    try:
        method = build_method(config).to(device)
    except ValueError as error:  # an unknown or non-ViT --arch
        raise TrainingError(str(error)) from None
    patch = method.student.patch_embed.patch_size[0]
    if config.img_size % patch:
        raise TrainingError(f"--img-size {config.img_size} must be a multiple of the patch size {patch} of "
                            f"--arch {config.arch}")
    if dist_info.enabled and device.type == "cuda":
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    images = train_images(source, config.img_size, seed=config.seed)
    paired = method.training_images(images) if hasattr(method, "training_images") else images  # CoTAP: pairs
    stream = AugmentedStream(paired, method.make_transform(), config.seed, config.aug_group)
    model = DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None) \
        if dist_info.enabled else method

    # fused: one kernel over all parameters (CPU: 2.7 ms vs 13.5 ms per step of the default DINO)
    optimizer = torch.optim.AdamW(param_groups(method, config.weight_decay), lr=config.lr,
                                  fused=device.type in ("cpu", "cuda"))
    lrs = cosine_schedule(config.lr, config.min_lr, config.steps, config.warmup_steps)
    dtype = amp_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    regularizer = DSERegularizer(config.dse_beta)
    control = DegradeControl(config, out, dist_info.is_main)  # --on-degrade: the alarm and its rollbacks
    monitor = DSEMonitor(every=config.dse_every, write=dist_info.is_main, alarm=control.alarm,
                         loggers=make_loggers(out, config.extra_loggers(), METRIC_FIELDS) if dist_info.is_main else [])

    # Fail now, not after the first checkpoint: the monitor sees every patch of the global view,
    # the regulariser the student's (MAE's encoder: only the visible ones).
    patches = (config.img_size // patch) ** 2
    checks = [("--dse-every", config.dse_every > 0, monitor, patches),
              ("--dse-beta", config.dse_beta > 0 or (config.on_degrade == "rollback" and config.rollback_dse_beta > 0),
               regularizer, method.student_patch_count(patches))]
    for option, used, user, count in checks:
        try:
            if used:
                user.check_shape((config.batch_size, count, method.student.embed_dim))
        except ValueError as error:
            raise TrainingError(f"DSE ({option}) cannot run on {count} patch tokens per image and "
                                f"{config.batch_size} images per step: {error}; raise --img-size or "
                                "--batch-size") from None

    start = 0
    if state is not None:
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start = int(state["step"])
        control.load_state_dict(state.get("degrade"), branch=branched is not None)
        regularizer.beta = control.dse_beta
    elif hasattr(method, "prepare"):  # a fresh CoTAP run: neighbours and prototypes from its init teacher
        method.prepare(images, device)
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", config.to_dict())
        for logger in monitor.loggers:  # a resumed run never logs a step twice; a fresh one starts empty
            logger.truncate_after(start if resume_from is not None else -1)

    def save(step: int) -> Path:
        path = checkpoint_path(out, step)
        if dist_info.is_main:
            save_checkpoint({"format": CHECKPOINT_FORMAT, "step": step, "config": config.to_dict(),
                             "backbone": method.eval_backbone().state_dict(), "method": method.state_dict(),
                             "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                             "rng": rng_state(), "degrade": control.state_dict()}, path)
        return path

    def reload(step: int) -> Path:  # --on-degrade rollback: the best checkpoint's weights and optimiser
        path = checkpoint_path(out, step)
        saved = load_checkpoint(path, map_location="cpu")  # saved >= 1 step ago: on disk for every rank
        method.load_state_dict(saved["method"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        return path

    last_path = resume_from
    if state is None or branched is not None:
        last_path = save(start)  # the initial network (random, or the branch point): each curve's baseline

    # ---- steps -----------------------------------------------------------------------------------
    from tqdm.auto import tqdm

    loader = step_loader(stream, start, config.steps, config.batch_size, dist_info.rank, dist_info.world_size,
                         workers=config.workers, pin_memory=device.type == "cuda")
    bar = tqdm(total=config.steps, initial=start, disable=not (dist_info.is_main and config.progress),
               desc=f"{config.method} {device.type}", dynamic_ncols=True)
    method.train()
    loss_value, done = math.nan, start
    data_start = time.perf_counter()
    batches = iter(loader)
    for step in range(start, config.steps):
        views = [v.to(device, non_blocking=True) for v in next_batch(batches, last_path)]
        data_ms = (time.perf_counter() - data_start) * 1e3
        step_start = time.perf_counter()
        lr = lrs[step] * control.lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            result = model(views, step)
            loss = result.loss
            if regularizer.beta > 0:
                loss = loss + regularizer(result.student_patches)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.clip_grad > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(method.parameters(), config.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        method.after_step(step)

        done = step + 1
        measured = None
        if monitor.due(done):
            feats = result.monitor_patches if result.monitor_patches is not None else method.monitor_tokens(views)
            measured = monitor.measure(feats)
        loss_value = loss.item()  # the step's one host sync (DINO stops on a non-finite loss too)
        step_ms = (time.perf_counter() - step_start) * 1e3
        if not math.isfinite(loss_value):
            raise TrainingError(f"loss is {loss_value} at step {done}; stopping (last checkpoint: {last_path})")

        if measured is not None or done % max(1, config.log_every) == 0 or done == config.steps:
            extra = dict(result.stats or {})
            if regularizer.last is not None:
                extra["reg_dse"] = regularizer.last.dse
            monitor.log(done, measured=measured, loss=loss.detach(), lr=lr, step_ms=step_ms,
                        data_ms=data_ms, **extra)
        saving = done % max(1, config.save_every) == 0 or done == config.steps
        if saving:
            monitor.flush()
        # An alarm fired by the rows flushed above: warn, stop or roll back, before this step's
        # checkpoint, so the checkpoint holds the outcome. Every rank saw the same rows.
        stop = control.act(done, monitor, reload)
        regularizer.beta = control.dse_beta
        if saving or stop:
            last_path = save(done)
        if stop:
            control.write_report(last_path)
            break
        bar.update(1)
        bar.set_postfix({"loss": f"{loss_value:.4f}", **({"dse": f"{monitor.last['dse']:.3f}"}
                                                        if "dse" in monitor.last else {})})
        data_start = time.perf_counter()
    bar.close()
    monitor.close()
    # last_loss: the logged loss of the last step (under torchrun the mean over ranks, not this
    # rank's own); None when this call ran no step (--resume of a finished run)
    if monitor.last.get("step") == done and "loss" in monitor.last:
        loss_value = monitor.last["loss"]
    summary = {"steps": config.steps, "last_loss": loss_value if math.isfinite(loss_value) else None,
               "checkpoint": str(last_path)}
    if control.stopped is not None:  # --on-degrade stop: the CLI exits with STOP_EXIT_CODE
        summary.update(stopped_at=control.stopped["at_step"], alarm=control.stopped)
    if dist_info.is_main:
        print(json_text(summary))
    return summary
