"""The settings of a study, with the full and the --quick presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

from ..train.config import COTAP_INIT_METHODS, SSL_METHODS, TrainConfig

_TRAINER = TrainConfig()  # the trainers' defaults, which the study follows where it names no other

# Eval rows' metric columns compared with mIoU: DSE, the recombined selection score P, baselines.
METRICS = ("dse", "score_p", "dense_rankme", "rankme_cls", "rankme_pooled", "alpha_req", "lidar")


@dataclass
class StudyPlan:
    """Everything `run_study` does, recorded in DIR/study.json.

    The default is the full study (hours on 2 CPU cores: see docs/STUDY.md); `StudyPlan.quick(out)` is the
    few-minute smoke version (tiny batches and probe: its numbers only show that it works).
    """

    out: str
    methods: tuple = SSL_METHODS
    steps: int = 400  # training steps per method
    checkpoints: int = 8  # evaluated checkpoints besides step 0 (every steps // checkpoints)
    batch_size: int = _TRAINER.batch_size
    lr: float = _TRAINER.lr  # peak learning rate
    seed: int = 0  # the first training seed; seeds seed, seed + 1, ... seed + seeds - 1
    seeds: int = 3  # training seeds per method (DIR/<method> holds the first, DIR/<method>/seed<N> the others)
    device: Optional[str] = None
    reg_beta: float = 1e-3  # --dse-beta of the regularised branch
    reg_steps: Optional[int] = None  # steps of each branch from the selected checkpoint (default steps // 3)
    betas: tuple = (0.0, 1e-3, 1e-2, 1e-1, 1.0)  # regulariser sweep (from step 0 and from the selected checkpoint)
    sweep_methods: tuple = ("mocov3", "mae")  # methods of the sweep (those not in `methods` are skipped)
    cotap_methods: tuple = ("dino", "ibot")  # continued with CoTAP and with its control (study/cotap.py)
    cotap_steps: Optional[int] = None  # steps of each continuation (default steps // 3)
    online_warmup: int = 2  # CausalSelector replayed over eval rows (the online pick): warm-up evaluations
    online_smoothing: int = 1  # ... and its median window
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 20251018
    probe_train_images: Optional[int] = 1024  # probe on the first N train images (None: all)
    probe_val_images: Optional[int] = None
    probe_epochs: int = 10
    dse_images: int = 256  # fixed evaluation images for DSE and the baselines
    dse_seeds: int = 4  # k-means seeds DSE is averaged over
    lidar_views: int = 8
    train_options: dict = field(default_factory=dict)  # extra TrainConfig fields for every run
    quick_mode: bool = False

    @classmethod
    def quick(cls, out: str, **overrides) -> "StudyPlan":
        """The --quick preset: 2 checkpoints of 12 steps of batch 8, a 128-image probe, 2 seeds,
        a sweep of beta 0 and 0.1, an alarm that may fire within 12 steps."""
        values = dict(out=out, steps=12, checkpoints=2, batch_size=8, reg_steps=6, probe_train_images=128,
                      probe_val_images=32, probe_epochs=3, dse_images=32, dse_seeds=2, lidar_views=4, quick_mode=True,
                      seeds=2, betas=(0.0, 0.1), bootstrap_resamples=500, cotap_steps=4,
                      train_options={"warmup_steps": 2, "local_crops": 1, "alarm_warmup": 2, "alarm_patience": 2})
        values.update(overrides)
        return cls(**values)

    @property
    def save_every(self) -> int:
        return max(1, self.steps // self.checkpoints)

    @property
    def seed_values(self) -> list:
        """The training seeds: seed, seed + 1, ..., seed + seeds - 1."""
        return [self.seed + i for i in range(self.seeds)]

    @property
    def swept(self) -> list:
        """The methods of the regulariser sweep: sweep_methods that the study trains."""
        return [m for m in self.sweep_methods if m in self.methods]

    @property
    def cotap_steps_value(self) -> int:
        return self.cotap_steps if self.cotap_steps is not None else max(1, self.steps // 3)

    @property
    def cotap_runs(self) -> list:
        """The methods continued with CoTAP: cotap_methods that the study trains."""
        return [m for m in self.cotap_methods if m in self.methods]

    @property
    def branch_steps(self) -> int:
        return self.reg_steps if self.reg_steps is not None else max(1, self.steps // 3)

    def validate(self) -> None:
        """ValueError naming the first bad setting (as its command-line option)."""
        unknown = [m for m in self.methods if m not in SSL_METHODS]
        if not self.methods or unknown:
            raise ValueError(f"--methods must be a comma list of {', '.join(SSL_METHODS)}; got "
                             f"{','.join(self.methods) or 'nothing'}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"--methods lists a method twice: {','.join(self.methods)}")
        for name in ("steps", "checkpoints", "batch_size", "probe_epochs", "dse_images", "dse_seeds", "branch_steps",
                     "seeds", "bootstrap_resamples", "online_smoothing"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        if self.checkpoints > self.steps:
            raise ValueError(f"--checkpoints {self.checkpoints} cannot exceed --steps {self.steps}")
        if self.lidar_views < 2:
            raise ValueError(f"--lidar-views must be >= 2; got {self.lidar_views}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0; got {self.lr}")
        if not self.reg_beta > 0:
            raise ValueError(f"--reg-beta must be > 0; got {self.reg_beta}")
        if not self.betas or any(not (b >= 0 and math.isfinite(b)) for b in self.betas) or 0.0 not in self.betas:
            raise ValueError(f"--betas must be a comma list of finite numbers >= 0 including 0; got "
                             f"{','.join(f'{b:g}' for b in self.betas) or 'nothing'}")
        if len(set(self.betas)) != len(self.betas):
            raise ValueError(f"--betas lists a value twice: {','.join(f'{b:g}' for b in self.betas)}")
        unknown = [m for m in self.sweep_methods if m not in SSL_METHODS]
        if unknown:
            raise ValueError(f"--sweep-methods must be a comma list of {', '.join(SSL_METHODS)}; got "
                             f"{','.join(self.sweep_methods)}")
        unknown = [m for m in self.cotap_methods if m not in COTAP_INIT_METHODS]
        if unknown:
            raise ValueError(f"--cotap-methods must be a comma list of {', '.join(COTAP_INIT_METHODS)}; got "
                             f"{','.join(self.cotap_methods)}")
        if self.cotap_steps is not None and self.cotap_steps < 1:
            raise ValueError(f"--cotap-steps must be >= 1; got {self.cotap_steps}")
        if self.online_warmup < 0:
            raise ValueError(f"--online-warmup must be >= 0; got {self.online_warmup}")

    def to_dict(self) -> dict:
        """Plain dict (study.json)."""
        values = dataclasses.asdict(self)
        values["methods"] = list(self.methods)
        values["betas"] = [float(b) for b in self.betas]
        values["sweep_methods"] = list(self.sweep_methods)
        values["cotap_methods"] = list(self.cotap_methods)
        return values
