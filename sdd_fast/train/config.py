"""Every option of `sdd-fast train`, with its default and help, stated once.

`sdd_fast/cli/train.py` builds the command line from these fields and `OUT/config.json` records
them, so a run can be reproduced (and resumed) from its directory alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

SSL_METHODS = ("dino", "ibot", "mocov3", "mae")  # train from scratch
METHOD_NAMES = SSL_METHODS + ("cotap",)  # cotap continues one of them (--init)
COTAP_INIT_METHODS = ("dino", "ibot", "mocov3")  # methods with an EMA teacher CoTAP can continue
LOGGER_NAMES = ("jsonl", "csv", "tensorboard")
AMP_MODES = ("auto", "none", "bf16", "fp16")
DEGRADE_ACTIONS = ("none", "warn", "stop", "rollback")


def _opt(default, help: str, **extra):
    """A dataclass field carrying its command-line help."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Options of one training run (see `sdd-fast train --help`)."""

    out: str = _opt("", "run directory: config.json, metrics.jsonl, checkpoints/ (required)")
    method: str = _opt("dino", "SSL method", choices=METHOD_NAMES)
    data: str = _opt("synthetic", "synthetic (embedded), imagefolder:PATH or voc:PATH")
    arch: str = _opt("sdd_vit_nano_conv_patch8", "any timm ViT name; the default trains on 2 CPU cores")
    img_size: int = _opt(64, "global view resolution (pixels)")
    steps: int = _opt(300, "optimisation steps")
    batch_size: int = _opt(32, "images per step and per process")
    lr: float = _opt(1e-3, "peak AdamW learning rate (after warm-up)")
    min_lr: float = _opt(1e-5, "final learning rate of the cosine schedule")
    warmup_steps: int = _opt(30, "linear learning-rate warm-up steps")
    weight_decay: float = _opt(0.04, "AdamW weight decay (not on biases and norms)")
    clip_grad: float = _opt(3.0, "gradient-norm clip (0 = off)")
    momentum_teacher: float = _opt(0.99, "EMA momentum of the teacher at step 0 (cosine to 1)")
    local_crops: int = _opt(2, "DINO / iBOT: local crops per image")
    teacher_temp: float = _opt(0.02, "DINO / iBOT: teacher softmax temperature (student: 0.1); at DINO's 0.04 "
                                     "the tiny default's teacher stays near uniform")
    aug_group: int = _opt(8, "images sharing one draw of augmentation parameters (one v2 call; views of an image "
                             "are always drawn apart); 1 = a draw per image, slower on small images")
    mask_ratio: float = _opt(0.0, "iBOT / MAE: masked patch ratio (0 = the method's default)")
    seed: int = _opt(0, "seed of weights, data order, augmentations and masks")
    device: Optional[str] = _opt(None, "cpu or cuda[:i] (default: cuda when available)")
    amp: str = _opt("auto", "mixed precision: auto (bf16 on CUDA, none on CPU), none, bf16, fp16",
                    choices=AMP_MODES)
    workers: int = _opt(0, "DataLoader worker processes (0 = augment in the training process)")
    dse_every: int = _opt(1, "DSE of the teacher's (or encoder's) patch tokens every K steps (0 = off)")
    dse_beta: float = _opt(0.0, "add -BETA * DSE(student patch tokens) to the loss (0 = monitor only)")
    save_every: int = _opt(100, "checkpoint every K steps (and at the end)")
    log_every: int = _opt(1, "metrics.jsonl row every K steps (rows also on every DSE step)")
    logger: str = _opt("jsonl", "extra loggers beside metrics.jsonl: comma list of csv, tensorboard")
    resume: bool = _opt(False, "continue from OUT's latest checkpoint", flag=True)
    branch_from: str = _opt("", "start from another run's checkpoint (weights, teacher, optimiser, step): its "
                                "run-defining options must match, except --steps and --dse-beta")
    # Degradation alarm (integrations/alarm.py). Not run-defining: what it did (lr scale, beta,
    # statistics, rollbacks) is in the checkpoints; the options only govern what it does next.
    on_degrade: str = _opt("none", "when the smoothed recombined DSE score stays below its best checkpoint's: "
                                   "none, warn (an `alarm` field in metrics.jsonl, OUT/alarm.json), stop "
                                   "(checkpoint, OUT/alarm.json, exit code 3), rollback (reload the best "
                                   "checkpoint and go on with the --rollback-* changes)", choices=DEGRADE_ACTIONS)
    alarm_patience: int = _opt(5, "consecutive low DSE evaluations that fire the alarm")
    alarm_margin: float = _opt(0.5, "an evaluation is low when its smoothed score is below the best by more than "
                                    "MARGIN stds of the scores so far")
    alarm_warmup: int = _opt(10, "first DSE evaluations: scored by the plain DSE, the alarm never fires")
    alarm_smoothing: int = _opt(3, "smoothed score: median of the last K DSE evaluations")
    rollback_lr_scale: float = _opt(0.5, "on rollback, multiply the learning rate (schedule) by S, again at each "
                                         "rollback")
    rollback_dse_beta: float = _opt(-1.0, "on rollback, set the DSE regulariser weight (--dse-beta) to B "
                                          "(-1 = keep it)")
    max_rollbacks: int = _opt(3, "at most R rollbacks; later alarms only warn")
    # CoTAP (train/cotap.py): continues the --init run with its image-level loss plus the
    # continuous-target AP loss on regions of neighbouring images (sdd_fast.continuous_ap_loss).
    init: str = _opt("", "cotap: the run directory (its latest checkpoint) or the checkpoint to continue")
    cotap_weight: float = _opt(1.0, "cotap: weight of the AP loss beside the init method's loss (0: the init "
                                    "method alone, with cotap's schedule: the control run)")
    cotap_backbone_lr_scale: float = _opt(0.1, "cotap: learning rate of the backbone relative to --lr (the heads "
                                               "and the object-aware filter take --lr)")
    cotap_neighbours: int = _opt(5, "cotap: each image is paired with a random one of its K nearest neighbours")
    cotap_regions: int = _opt(8, "cotap: regions per image (the most foreground ones)")
    cotap_prototypes: int = _opt(64, "cotap: prototypes of the object-aware filter")
    cotap_foreground: float = _opt(0.6, "cotap: fraction of the CLS attention mass kept as foreground")
    cotap_theta: float = _opt(0.5, "cotap: teacher similarities at or under THETA carry no weight")
    cotap_alpha: float = _opt(0.1, "cotap: weight scale of candidates from other images")
    cotap_tau: float = _opt(0.1, "cotap: width of the smoothed step")
    # On by default, so the command line offers --no-progress, and this is that option's help.
    progress: bool = _opt(True, "hide the progress bar", flag=True)

    def to_dict(self) -> dict:
        """Plain dict for config.json / checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Inverse of to_dict; unknown keys (newer versions) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def validate(self) -> None:
        """Raises ValueError naming the first bad option (as --option)."""

        def bad(name, message):
            raise ValueError(f"--{name.replace('_', '-')} {message}")

        if not self.out:
            bad("out", "is required")
        if self.method not in METHOD_NAMES:
            bad("method", f"must be one of {', '.join(METHOD_NAMES)}; got {self.method!r}")
        for name in ("img_size", "steps", "batch_size", "aug_group"):
            if getattr(self, name) < 1:
                bad(name, f"must be >= 1; got {getattr(self, name)}")
        for name in ("warmup_steps", "dse_every", "save_every", "log_every", "local_crops", "workers"):
            if getattr(self, name) < 0:
                bad(name, f"must be >= 0; got {getattr(self, name)}")
        if not self.teacher_temp > 0:
            bad("teacher_temp", f"must be > 0; got {self.teacher_temp}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                bad(f.name, f"must be a finite number; got {value}")
        for name in ("lr", "min_lr", "weight_decay", "clip_grad", "dse_beta"):
            if not getattr(self, name) >= 0:
                bad(name, f"must be >= 0; got {getattr(self, name)}")
        if not 0 <= self.momentum_teacher < 1:
            bad("momentum_teacher", f"must be in [0, 1); got {self.momentum_teacher}")
        if not 0 <= self.mask_ratio < 1:
            bad("mask_ratio", f"must be in [0, 1); got {self.mask_ratio}")
        if self.amp not in AMP_MODES:
            bad("amp", f"must be one of {', '.join(AMP_MODES)}; got {self.amp!r}")
        unknown = set(self.extra_loggers()) - set(LOGGER_NAMES)
        if unknown:
            bad("logger", f"knows {', '.join(LOGGER_NAMES)}; got {', '.join(sorted(unknown))}")
        if self.img_size < 16 and self.method in ("dino", "ibot"):
            bad("img_size", "must be >= 16 for multi-crop methods")
        self._validate_alarm(bad)
        self._validate_cotap(bad)

    def _validate_cotap(self, bad) -> None:
        """The --init / --cotap-* options (see `validate`)."""
        if self.method == "cotap" and not self.init:
            bad("init", "is required by --method cotap: the run directory or checkpoint to continue")
        if self.init and self.method != "cotap":
            bad("init", f"is for --method cotap (got --method {self.method}); to continue a run use --branch-from")
        for name in ("cotap_neighbours", "cotap_regions", "cotap_prototypes"):
            if getattr(self, name) < 1:
                bad(name, f"must be >= 1; got {getattr(self, name)}")
        for name in ("cotap_weight", "cotap_alpha"):
            if not getattr(self, name) >= 0:
                bad(name, f"must be >= 0; got {getattr(self, name)}")
        if not 0 < self.cotap_foreground <= 1:
            bad("cotap_foreground", f"must be in (0, 1]; got {self.cotap_foreground}")
        if not self.cotap_tau > 0:
            bad("cotap_tau", f"must be > 0; got {self.cotap_tau}")
        if not self.cotap_backbone_lr_scale > 0:
            bad("cotap_backbone_lr_scale", f"must be > 0; got {self.cotap_backbone_lr_scale}")

    def _validate_alarm(self, bad) -> None:
        """The --on-degrade options (see `validate`)."""
        if self.on_degrade not in DEGRADE_ACTIONS:
            bad("on_degrade", f"must be one of {', '.join(DEGRADE_ACTIONS)}; got {self.on_degrade!r}")
        for name in ("alarm_patience", "alarm_smoothing"):
            if getattr(self, name) < 1:
                bad(name, f"must be >= 1; got {getattr(self, name)}")
        for name in ("alarm_warmup", "max_rollbacks", "alarm_margin"):
            if not getattr(self, name) >= 0:
                bad(name, f"must be >= 0; got {getattr(self, name)}")
        if not self.rollback_lr_scale > 0:
            bad("rollback_lr_scale", f"must be > 0; got {self.rollback_lr_scale}")
        if not (self.rollback_dse_beta >= 0 or self.rollback_dse_beta == -1):
            bad("rollback_dse_beta", f"must be >= 0, or -1 to keep --dse-beta; got {self.rollback_dse_beta}")
        if self.on_degrade != "none" and self.dse_every == 0:
            bad("on_degrade", f"{self.on_degrade} needs DSE evaluations: --dse-every must be > 0")
        if self.on_degrade == "rollback" and max(1, self.save_every) % self.dse_every:
            bad("on_degrade", f"rollback needs DSE at checkpoint steps: --save-every {self.save_every} must be a "
                              f"multiple of --dse-every {self.dse_every}")

    def extra_loggers(self) -> list:
        """The --logger list (jsonl is always written)."""
        return [name.strip() for name in self.logger.split(",") if name.strip()]
