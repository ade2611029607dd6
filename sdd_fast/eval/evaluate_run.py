"""Linear-probe mIoU and DSE of every checkpoint of a run, in OUT/eval.jsonl (resumable).

Every checkpoint is scored on the same images: the probe on the data set's train / val
splits, DSE on the first `dse_images` val images with `sdd_fast.dse`'s default options (mean
of each component over batches of `dse_batch` images and over the k-means seeds
0..`dse_seeds`-1: on 64 images, one seed's partitions move a checkpoint's DSE by a tenth of
its range over the demo run). eval.jsonl is rewritten
atomically after each checkpoint, so an interrupted evaluation resumes where it stopped;
OUT/eval_config.json records the settings so that a resume never mixes two of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from ..core.options import DSE_FIELDS
from ..utils.atomic import remove_stale_temps
from ..utils.devices import default_device
from ..utils.jsonl import read_jsonl, write_json, write_jsonl
from ..utils.runlock import run_lock
from .probe import ProbeOptions, default_tokens_fn, linear_probe

EVAL_FILE = "eval.jsonl"
SETTINGS_FILE = "eval_config.json"
COMPONENTS = DSE_FIELDS  # every row holds the metric and its four components
SPREAD_KEY = "dse_seed_sd"  # population std over the k-means seeds of the evaluation set's DSE
ROW_KEYS = ("step", "checkpoint", "miou", "pixel_acc") + COMPONENTS + (SPREAD_KEY,)


class EvalError(ValueError):
    """The run or the options cannot be evaluated (message says what to do)."""


def read_run_config(run_dir) -> dict:
    """OUT/config.json as a dict (EvalError when missing or not JSON)."""
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"{path} is missing: {run_dir} is not an sdd-fast run directory") from None
    except json.JSONDecodeError as error:
        raise EvalError(f"{path} is not JSON ({error})") from None


def check_labelled(data: str) -> None:
    """EvalError unless `data` has per-pixel labels (imagefolder:PATH has none)."""
    if data.split(":", 1)[0] == "imagefolder":
        raise EvalError(f"--data {data} has no masks, and the probe needs them: pass --data synthetic or "
                        "--data voc:PATH")


def load_splits(data: str, img_size: int) -> tuple:
    """(train dataset, val dataset, number of classes) of a labelled data spec.

    Args:
        data (str): "synthetic" or "voc:PATH" (as --data).
        img_size (int): image side S; items are (image [3, S, S], mask [S, S] int64).

    The synthetic data set is always drawn with seed 0: the same benchmark for every run.
    """
    check_labelled(data)
    from ..data import num_classes, parse_data, segmentation_split

    try:  # the data module's errors name --data and say what is wrong
        source = parse_data(data)
        train = segmentation_split(source, "train", img_size, seed=0)
        val = segmentation_split(source, "val", img_size, seed=0)
    except ValueError as error:
        raise EvalError(str(error)) from None
    return train, val, num_classes(source)


def first_images(dataset, count: int) -> torch.Tensor:
    """Tensor[min(count, len), 3, H, W]: the first images of a dataset (the DSE evaluation set)."""
    count = min(count, len(dataset))
    if count < 1:
        raise EvalError("the val split is empty: no images for DSE")
    return torch.stack([dataset[i][0] for i in range(count)])


@torch.no_grad()
def averaged_dse(tokens_fn, images: torch.Tensor, batch: int, device="cpu", seeds: int = 1) -> dict:
    """Mean of `sdd_fast.dse`'s five numbers over full batches of `batch` images and over the
    k-means seeds 0..seeds-1 (the same seeds for every checkpoint).

    Args:
        tokens_fn: images [B, 3, H, W] -> patch tokens [B, N, d].
        images (Tensor[M, 3, H, W]): the evaluation set; a last partial batch is dropped
            (every batch then has the same size), unless M < batch (one batch of M).
        seeds (int): k-means seeds averaged over; each batch's tokens are computed once.

    Returns:
        {"dse", "inter", "intra_image", "intra_batch", "dim", "dse_seed_sd"} floats; the last is
        the population standard deviation over the seeds of the evaluation set's DSE (0 with
        one seed): how much the k-means partitions alone move it.
    """
    from .. import dse

    if seeds < 1:
        raise EvalError(f"dse_seeds must be >= 1; got {seeds}")
    batch = min(batch, images.shape[0])
    count = images.shape[0] // batch
    sums = torch.zeros(seeds, len(COMPONENTS), dtype=torch.float64)  # [S, 5] over batches
    for i in range(count):
        tokens = tokens_fn(images[i * batch:(i + 1) * batch].to(device)).float()  # [batch, N, d]
        try:
            for seed in range(seeds):
                sums[seed] += torch.stack(list(dse(tokens, seed=seed))).double().cpu()
        except ValueError as error:  # e.g. a last group of images too small for global_k clusters
            raise EvalError(f"DSE of batches of {batch} images: {error} (try --dse-batch 32)") from None
    per_seed = sums / count  # [S, 5]
    means = dict(zip(COMPONENTS, per_seed.mean(0).tolist()))
    return {**means, SPREAD_KEY: float(per_seed[:, 0].std(correction=0))}


def load_backbone(path, device="cpu"):
    """The backbone of a checkpoint file, on `device`, in eval mode (CheckpointError if bad)."""
    from ..models import build_backbone
    from ..train.checkpoint import load_checkpoint

    state = load_checkpoint(path, map_location="cpu")
    config = state["config"]
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the caller's RNG alone
        backbone = build_backbone(config["arch"], int(config["img_size"]))
    backbone.load_state_dict(state["backbone"])
    return backbone.to(device).eval()


def evaluate_run(run_dir, data: Optional[str] = None, device=None, probe: Optional[ProbeOptions] = None, *,
                 dse_images: int = 256, dse_batch: int = 32, dse_seeds: int = 4, seed: int = 0,
                 baselines: bool = False, lidar_views: int = 8, force: bool = False, redo_stale: bool = False,
                 progress: bool = True) -> list:
    """Probes and measures every checkpoint of a run; returns (and writes) OUT/eval.jsonl's rows.

    Args:
        run_dir: run directory with config.json and checkpoints/step_XXXXXX.pt.
        data (str, optional): labelled data ("synthetic" | "voc:PATH"); default: the run's own.
        device: torch device (default: cuda when available, else cpu).
        probe (ProbeOptions, optional): linear-probe settings (defaults if None).
        dse_images (int): the first `dse_images` val images form the DSE evaluation set.
        dse_batch (int): images per `sdd_fast.dse` call (a multiple of DSE's group of 8 is best).
        dse_seeds (int): k-means seeds 0..dse_seeds-1 each component is averaged over.
        seed (int): seed of the probe's batch order (and of the LiDAR views).
        baselines (bool): also measure RankMe, dense RankMe, alpha-ReQ and LiDAR on the DSE
            evaluation set (`sdd_fast.eval.baselines`; LiDAR on `lidar_views` views per image).
        force (bool): recompute checkpoints already in eval.jsonl.
        redo_stale (bool): recompute them only if they were computed with other settings
            (instead of raising EvalError); `make demo` uses it after an upgrade changes a default.
        progress (bool): tqdm bar over checkpoints.

    Returns:
        list of rows, one per evaluated checkpoint, by step: {step, checkpoint (path relative
        to the run dir), miou, pixel_acc, dse, inter, intra_image, intra_batch, dim,
        dse_seed_sd} (+ the baselines' BASELINE_KEYS when `baselines`).

    Raises:
        EvalError: no config / checkpoints, data without masks, or settings that differ
            from those of the rows being resumed (pass force=True).
    """
    from ..train.checkpoint import list_checkpoints

    run_dir = Path(run_dir)
    probe = probe or ProbeOptions()
    probe.validate()
    if min(dse_images, dse_batch, dse_seeds) < 1:
        raise EvalError(f"dse_images, dse_batch and dse_seeds must be >= 1; got {dse_images}, {dse_batch}, "
                        f"{dse_seeds}")
    device = default_device(device)
    config = read_run_config(run_dir)
    data = data or config.get("data", "synthetic")
    check_labelled(data)
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise EvalError(f"{run_dir / 'checkpoints'} holds no step_XXXXXX.pt checkpoints")

    with run_lock(run_dir, "eval"):  # one writer of eval.jsonl at a time
        remove_stale_temps(run_dir, (EVAL_FILE, SETTINGS_FILE))  # left by an eval killed mid-write
        return _evaluate_checkpoints(run_dir, checkpoints, config, data, device, probe, dse_images, dse_batch,
                                     dse_seeds, seed, baselines, lidar_views, force, redo_stale, progress)


def _evaluate_checkpoints(run_dir, checkpoints, config, data, device, probe, dse_images, dse_batch, dse_seeds, seed,
                          baselines, lidar_views, force, redo_stale, progress) -> list:
    """evaluate_run's work once the options are checked and eval.jsonl's lock is held."""
    from tqdm.auto import tqdm

    # ---- resume: reuse rows computed with the same settings -----------------------------------
    settings = {"data": data, "seed": seed, "dse_images": dse_images, "dse_batch": dse_batch,
                "dse_seeds": dse_seeds, "probe": probe.to_dict(),
                **({"baselines": True, "lidar_views": lidar_views} if baselines else {})}
    eval_path, settings_path = run_dir / EVAL_FILE, run_dir / SETTINGS_FILE
    rows = [] if force else read_jsonl(eval_path)
    bad = [row for row in rows if not isinstance(row.get("step"), int)]
    if bad:
        raise EvalError(f"{eval_path} has a row without an integer step ({json.dumps(bad[0])[:80]}); fix or delete "
                        "that line, or pass --force")
    done = {row["step"]: row for row in rows}
    if done and settings_path.is_file():
        try:
            previous = json.loads(settings_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise EvalError(f"{settings_path} is not JSON ({error}); delete it or pass --force") from None
        if previous != settings:
            if not redo_stale:
                changed = sorted(k for k in settings if previous.get(k) != settings[k])
                raise EvalError(f"{eval_path} was computed with other settings ({', '.join(changed)}); "
                                "pass --force to recompute it")
            done = {}  # stale rows: all recomputed
    write_json(settings_path, settings)

    todo = [(step, path) for step, path in checkpoints if step not in done]
    if not todo:
        return [done[step] for step in sorted(done)]
    train_set, val_set, classes = load_splits(data, int(config["img_size"]))
    dse_set = first_images(val_set, dse_images)
    views = None
    if baselines:
        from .baselines import baseline_metrics
        from .baselines import lidar_views as make_views

        views = make_views(dse_set, lidar_views, seed)  # the same views for every checkpoint
    for step, path in tqdm(todo, desc="eval checkpoints", disable=not progress, dynamic_ncols=True):
        backbone = load_backbone(path, device)
        tokens_fn = default_tokens_fn(backbone)
        result = linear_probe(backbone, train_set, val_set, classes, probe, device=device, seed=seed,
                              tokens_fn=tokens_fn)
        row = {"step": step, "checkpoint": path.relative_to(run_dir).as_posix(), "miou": result.miou,
               "pixel_acc": result.pixel_acc, **averaged_dse(tokens_fn, dse_set, dse_batch, device, dse_seeds)}
        if views is not None:
            row.update(baseline_metrics(backbone, dse_set, views))
        done[step] = row
        write_jsonl(eval_path, [done[s] for s in sorted(done)])  # atomic: a crash keeps the previous rows
    return [done[step] for step in sorted(done)]
