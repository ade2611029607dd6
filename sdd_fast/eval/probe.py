"""Dense linear probe: frozen patch tokens -> linear 1x1 head -> mIoU (the labelled check of DSE).

The train split's tokens are extracted once; the head (one linear layer d -> C on per-channel
standardised tokens, no BatchNorm) is trained with AdamW and a cosine schedule on them; its
logits `[B, C, h, w]` are upsampled bilinearly to the mask resolution for the cross-entropy
and for the val predictions (as two small matmuls: bilinear is separable). The same seed
gives the same result on the same device (a private torch.Generator orders the batches; the
head starts at zero; the global RNG is never touched).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = 255


@dataclass(frozen=True)
class ProbeOptions:
    """Settings of the linear probe.

    Defaults, for 2048 + 256 images of 64 px with the default 64-wide ViT on one CPU core: about
    4 s to extract the train tokens, 4 s to train, 1 s to score the val split. Training
    on every 2nd pixel row / column gives the same loss and mIoU as every pixel, 3x faster.
    """

    epochs: int = 10  # passes over the cached train tokens
    lr: float = 3e-2  # peak AdamW learning rate (cosine to 0, no warm-up; tokens are standardised)
    weight_decay: float = 1e-4
    batch_size: int = 64  # images per optimisation step
    extract_batch: int = 128  # images per backbone forward
    max_train_images: Optional[int] = None  # use only the first M train images (None = all)
    max_val_images: Optional[int] = None  # use only the first M val images (None = all)
    train_stride: int = 2  # train on every k-th pixel row / column of the masks (val: every pixel)

    def validate(self) -> None:
        """Raises ValueError naming the first bad option."""
        for name in ("epochs", "batch_size", "extract_batch", "train_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"probe {name} must be >= 1; got {getattr(self, name)}")
        for name in ("max_train_images", "max_val_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"probe {name} must be >= 1 or None; got {value}")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(f"probe lr must be > 0 and weight_decay >= 0; got {self.lr}, "
                             f"{self.weight_decay}")

    def to_dict(self) -> dict:
        """Plain dict (for eval settings files)."""
        return asdict(self)


@dataclass
class ProbeResult:
    """Val-split scores of a trained linear head."""

    miou: float  # mean IoU over the classes with union > 0
    per_class_iou: list  # [C] floats, NaN where a class has union 0
    pixel_acc: float  # correct / labelled pixels
    confusion: torch.Tensor  # [C, C] int64, rows = target, cols = prediction (CPU)
    train_loss: float  # mean cross-entropy of the last epoch
    train_images: int
    val_images: int
    seconds: float  # wall time of extraction + training + evaluation


class LinearHead(nn.Module):
    """A linear layer d -> C on tokens standardised with fixed train-split statistics.

    Args:
        mean, std (Tensor[d]): per-channel statistics of the train tokens.
        num_classes (int): C.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())
        # Zero init: the problem is convex, and nn.Linear's random init would draw from the global RNG.
        self.weight = nn.Parameter(torch.zeros(num_classes, mean.numel(), device=mean.device))
        self.bias = nn.Parameter(torch.zeros(num_classes, device=mean.device))

    def standardize(self, tokens: torch.Tensor) -> torch.Tensor:
        """(tokens - mean) / std for tokens [..., d]."""
        return (tokens - self.mean) / self.std

    def forward(self, tokens: torch.Tensor, grid: tuple, size: tuple, stride: int = 1,
                standardized: bool = False) -> torch.Tensor:
        """Logits [B, C, H', W'] of tokens [B, N = h * w, d], upsampled bilinearly to `size` (H, W).

        Args:
            grid (tuple): (h, w) of the token grid.
            size (tuple): (H, W) mask resolution.
            stride (int): keep only pixel rows / columns stride // 2, stride // 2 + stride, ...
                (H' = ceil((H - stride // 2) / stride)); 1 = every pixel.
            standardized (bool): the tokens are already `standardize`d.
        """
        x = tokens if standardized else self.standardize(tokens)
        logits = F.linear(x, self.weight, self.bias)  # [B, N, C]
        logits = logits.transpose(1, 2).reshape(-1, *grid)  # [B * C, h, w]
        rows = bilinear_weights(size[0], grid[0], stride, logits.device, logits.dtype)  # [H', h]
        cols = bilinear_weights(size[1], grid[1], stride, logits.device, logits.dtype)  # [W', w]
        up = rows @ logits @ cols.T  # separable bilinear: as F.interpolate, 2x faster on CPU
        return up.reshape(tokens.shape[0], -1, rows.shape[0], cols.shape[0])


@functools.lru_cache(maxsize=32)
def bilinear_weights(out_size: int, in_size: int, stride: int = 1, device="cpu",
                     dtype=torch.float32) -> torch.Tensor:
    """Tensor[out', in]: 1-D linear interpolation weights of F.interpolate(align_corners=False),
    keeping output positions stride // 2, stride // 2 + stride, ... (all for stride 1)."""
    eye = torch.eye(in_size, dtype=torch.float64).unsqueeze(0)  # [1, in, in]: one channel per input
    weights = F.interpolate(eye, size=out_size, mode="linear", align_corners=False)[0].T  # [out, in]
    return weights[stride // 2::stride].to(device=device, dtype=dtype).contiguous()


# ---- tokens ------------------------------------------------------------------------------------


def default_tokens_fn(backbone: nn.Module) -> Callable:
    """images [B, 3, H, W] -> patch tokens [B, N, d]: `sdd_fast.models.patch_tokens` for timm
    ViTs, else `backbone(images)` (which must return [B, N, d])."""
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(backbone, VisionTransformer):
        from ..models import patch_tokens

        return lambda images: patch_tokens(backbone, images)
    return backbone


def token_grid(num_tokens: int, image_hw: tuple) -> tuple:
    """(h, w) of a patch grid of `num_tokens` tokens with the aspect ratio of `image_hw`."""
    h = max(1, round(math.sqrt(num_tokens * image_hw[0] / image_hw[1])))
    w = num_tokens // h
    if h * w != num_tokens:
        raise ValueError(f"{num_tokens} tokens do not form a grid for {image_hw[0]}x{image_hw[1]} images")
    return h, w


def _loader(dataset, batch_size: int, limit: Optional[int]):
    """In-order batches of the first `limit` items of `dataset`."""
    if limit is not None and limit < len(dataset):
        dataset = torch.utils.data.Subset(dataset, range(limit))
    # A private generator: even an unshuffled DataLoader draws its base seed from the global RNG.
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                                       generator=torch.Generator())


@torch.no_grad()
def extract_tokens(tokens_fn: Callable, dataset, *, batch_size: int = 128, device="cpu",
                   limit: Optional[int] = None, num_classes: int = 255, progress: bool = False) -> tuple:
    """Patch tokens and masks of (the first `limit` items of) a segmentation dataset.

    Args:
        tokens_fn: images [B, 3, H, W] (on `device`) -> tokens [B, N, d].
        dataset: items (image [3, H, W] float, mask [H, W] int64, IGNORE_INDEX = ignore).
        num_classes (int): C; masks are cached as uint8 when C < 255 (4x less memory).

    Returns:
        tokens (Tensor[M, N, d] float32 on `device`), masks (Tensor[M, H, W] on `device`).
    """
    from tqdm.auto import tqdm

    tokens, masks = [], []
    mask_dtype = torch.uint8 if num_classes < IGNORE_INDEX else torch.int64
    for images, target in tqdm(_loader(dataset, batch_size, limit), desc="probe tokens", leave=False,
                               disable=not progress):
        tokens.append(tokens_fn(images.to(device)).float())
        masks.append(target.to(device=device, dtype=mask_dtype))
    if not tokens:
        raise ValueError("the probe's train split is empty")
    return torch.cat(tokens), torch.cat(masks)


# ---- scores ------------------------------------------------------------------------------------


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Confusion counts of predicted vs true labels (pixels whose target is `ignore_index` skipped).

    Args:
        pred (Tensor[...] int): predicted classes in [0, C).
        target (Tensor[...] int, same shape): true classes in [0, C) or `ignore_index`.
        num_classes (int): C.

    Returns:
        Tensor[C, C] int64: entry [t, p] counts pixels of class t predicted as p.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    keep = target != ignore_index
    pred, target = pred[keep].long(), target[keep].long()
    if pred.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target has labels outside [0, {num_classes}) other than {ignore_index}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"pred has labels outside [0, {num_classes})")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_from_confusion(confusion: torch.Tensor) -> tuple:
    """(miou, per-class IoU Tensor[C] float64 (NaN where union 0), pixel accuracy) of a
    confusion matrix Tensor[C, C] (rows = target). mIoU averages the classes with union > 0."""
    conf = confusion.double().cpu()
    hits = conf.diagonal()
    union = conf.sum(0) + conf.sum(1) - hits
    iou = torch.where(union > 0, hits / union.clamp_min(1), torch.full_like(hits, math.nan))
    present = union > 0
    miou = float(iou[present].mean()) if bool(present.any()) else math.nan
    total = float(conf.sum())
    pixel_acc = float(hits.sum()) / total if total > 0 else math.nan
    return miou, iou, pixel_acc


# ---- head --------------------------------------------------------------------------------------


@torch.enable_grad()
def train_linear_head(tokens: torch.Tensor, masks: torch.Tensor, num_classes: int,
                      options: Optional[ProbeOptions] = None, seed: int = 0) -> tuple:
    """Fits a LinearHead on cached tokens with AdamW + cosine (no warm-up).

    Args:
        tokens (Tensor[M, N, d]): train tokens, N = h * w patches per image.
        masks (Tensor[M, H, W] int): per-pixel classes, IGNORE_INDEX ignored.
        num_classes (int): C.
        options (ProbeOptions): epochs, lr, weight_decay, batch_size, train_stride.
        seed (int): seeds the batch order (a private torch.Generator).

    Returns:
        (LinearHead on tokens' device, mean cross-entropy of the last epoch as a float).
    """
    options = options or ProbeOptions()
    count, num_tokens, _ = tokens.shape
    size = tuple(masks.shape[-2:])
    grid = token_grid(num_tokens, size)
    flat = tokens.reshape(-1, tokens.shape[-1])
    head = LinearHead(flat.mean(0), flat.std(0).clamp_min(1e-6), num_classes).to(tokens.device)
    tokens = head.standardize(tokens)  # once, not per step
    offset, stride = options.train_stride // 2, options.train_stride
    masks = masks[:, offset::stride, offset::stride]
    optimizer = torch.optim.AdamW(head.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(count / options.batch_size)
    total = options.epochs * per_epoch
    step = 0
    for _ in range(options.epochs):
        order = torch.randperm(count, generator=generator).to(tokens.device)
        loss_sum = torch.zeros((), device=tokens.device)
        for start in range(0, count, options.batch_size):
            index = order[start:start + options.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * options.lr * (1 + math.cos(math.pi * step / total))
            target = masks[index].long()
            logits = head(tokens[index], grid, size, stride=stride, standardized=True)
            # Sum / labelled pixels: a batch with no labelled pixel gives 0, not NaN.
            loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum")
            loss = loss / (target != IGNORE_INDEX).sum().clamp_min(1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            step += 1
    return head.eval(), float(loss_sum) / per_epoch


@torch.no_grad()
def evaluate_head(head: LinearHead, tokens_fn: Callable, dataset, num_classes: int, *, batch_size: int = 128,
                  device="cpu", limit: Optional[int] = None, progress: bool = False) -> tuple:
    """(confusion Tensor[C, C] int64 on CPU, images seen) of the head's predictions on `dataset`."""
    from tqdm.auto import tqdm

    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    seen = 0
    for images, target in tqdm(_loader(dataset, batch_size, limit), desc="probe val", leave=False,
                               disable=not progress):
        tokens = tokens_fn(images.to(device)).float()
        target = target.to(device)
        size = tuple(target.shape[-2:])
        pred = head(tokens, token_grid(tokens.shape[1], size), size).argmax(1)
        confusion += confusion_matrix(pred, target, num_classes)
        seen += images.shape[0]
    return confusion.cpu(), seen


def linear_probe(backbone: nn.Module, train_set, val_set, num_classes: int,
                 options: Optional[ProbeOptions] = None, *, device="cpu", seed: int = 0,
                 tokens_fn: Optional[Callable] = None, progress: bool = False) -> ProbeResult:
    """Dense linear-probe segmentation scores of a frozen backbone.

    Args:
        backbone (nn.Module): already on `device`; put in eval mode for the probe and restored.
        train_set, val_set: datasets of (image Tensor[3, H, W] float, mask Tensor[H, W] int64),
            IGNORE_INDEX (255) = unlabelled pixel.
        num_classes (int): C; labels are in [0, C).
        options (ProbeOptions): epochs, lr, batch sizes, image limits (defaults if None).
        device: where tokens are cached and the head is trained.
        seed (int): seed of the batch order.
        tokens_fn: images [B, 3, H, W] -> patch tokens [B, N, d] (default: `default_tokens_fn`).
        progress (bool): tqdm bars.

    Returns:
        ProbeResult(miou, per_class_iou, pixel_acc, confusion, train_loss, ...).
    """
    options = options or ProbeOptions()
    options.validate()
    start = time.perf_counter()
    tokens_fn = tokens_fn or default_tokens_fn(backbone)
    was_training = backbone.training
    backbone.eval()
    try:
        tokens, masks = extract_tokens(tokens_fn, train_set, batch_size=options.extract_batch, device=device,
                                       limit=options.max_train_images, num_classes=num_classes,
                                       progress=progress)
        head, train_loss = train_linear_head(tokens, masks, num_classes, options, seed=seed)
        train_images = tokens.shape[0]
        del tokens, masks
        confusion, val_images = evaluate_head(head, tokens_fn, val_set, num_classes,
                                              batch_size=options.extract_batch, device=device,
                                              limit=options.max_val_images, progress=progress)
    finally:
        backbone.train(was_training)
    miou, iou, pixel_acc = iou_from_confusion(confusion)
    return ProbeResult(miou=miou, per_class_iou=iou.tolist(), pixel_acc=pixel_acc, confusion=confusion,
                       train_loss=train_loss, train_images=train_images, val_images=val_images,
                       seconds=time.perf_counter() - start)
