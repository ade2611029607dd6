"""CoTAP (arXiv 2509.09429): continued dense self-distillation of an existing SSL run.

`sdd-fast train --method cotap --init RUN_OR_CHECKPOINT` continues the init run's method (DINO,
iBOT or MoCo v3: its own image-level loss, heads and EMA teacher) and adds the continuous-target
AP loss (sdd_fast.continuous_ap_loss) on regions of neighbouring images:

- pairs: every training image's K nearest neighbours by the init teacher's pooled patch tokens
  (cosine), computed once at the start and stored in the checkpoints; each sample is paired
  with a random one of them (drawn from the run seed and the sample's position: resumable);
- foreground: the teacher's last-block CLS attention, the patches holding `cotap_foreground`
  of its mass;
- regions: a patch head (MLP) over the tokens after the object-aware filter, average-pooled
  over 2 x 2 and 4 x 4 patch windows; each image keeps its `cotap_regions` most foreground
  regions;
- scores: cosine similarities of every anchor region (first global view of image i) with every
  region of every partner view in the batch, student for the scores and EMA teacher for the
  targets; the partner's own regions weigh 1, the other partners' `cotap_alpha`;
- the object-aware filter: M learnable prototypes; patch queries attend to them (softmax over
  prototypes) and the result is added to the tokens; the prototypes start at spherical k-means
  centroids (sdd::kmeans on L2-normalised pooled teacher tokens, then normalised).

Differences from the paper, which neither its method section nor its code could be read to
check (say so when reporting): the filter sits after the backbone on the dense branch (the
evaluated backbone stays a plain ViT), and every value here (K, regions, scales, theta, tau,
alpha, the loss weight, the learning rates) is our choice, not the paper's.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from ..core.ap_loss import continuous_ap_loss
from ..core.ops import kmeans
from ..data import MEAN, STD
from ..models import encode, encode_with_cls_attention, split_tokens
from .checkpoint import latest_checkpoint, load_checkpoint
from .config import COTAP_INIT_METHODS, TrainConfig
from .method import EMATeacher, SSLMethod, StepOutput
from .stream import _mix

REGION_SCALES = (2, 4)  # average-pooling windows, in patches
HEAD_DIM = 128


def init_checkpoint(init: str) -> Path:
    """The checkpoint --init names: itself, or a run directory's latest checkpoint."""
    path = Path(init)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise ValueError(f"--init {init}: the run directory holds no checkpoint")
        return found
    if not path.is_file():
        raise ValueError(f"--init {init}: no such run directory or checkpoint")
    return path


class ObjectAwareFilter(nn.Module):
    """tokens [B, N, d] -> tokens + proj(softmax_M(q(tokens) k(P)^T / sqrt(d)) v(P)), P the M
    learnable prototypes [M, d]."""

    def __init__(self, dim: int, prototypes: int):
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(prototypes, dim) * dim ** -0.5)
        self.norm = nn.LayerNorm(dim)
        self.q, self.k, self.v, self.proj = (nn.Linear(dim, dim) for _ in range(4))
        nn.init.zeros_(self.proj.weight)  # starts as the identity: the init run's tokens
        nn.init.zeros_(self.proj.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        attn = (self.q(self.norm(tokens)) @ self.k(self.prototypes).T / math.sqrt(tokens.shape[-1])).softmax(-1)
        return tokens + self.proj(attn @ self.v(self.prototypes))  # [B, N, d]


class PairedImages(torch.utils.data.Dataset):
    """Training images with a partner each: item (index, position) -> uint8 [2, 3, H, W] (the
    image and one of its neighbours, chosen by (seed, position))."""

    def __init__(self, images, method: "CoTAP", seed: int):
        self.images, self.method, self.seed = images, method, seed
        self._key, self._table = None, None  # a CPU copy of method.neighbours (it may live on the GPU)

    def neighbours(self) -> torch.Tensor:
        """[n, K] the method's neighbour table, on the CPU (copied again when it changes)."""
        table = self.method.neighbours
        key = (id(table), table._version)
        if key != self._key:
            self._key, self._table = key, table.cpu()
        return self._table

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.at_position(index, index)

    def at_position(self, index: int, position: int) -> torch.Tensor:
        neighbours = self.neighbours()[index]
        partner = int(neighbours[_mix(self.seed ^ 0x2545F491, position) % len(neighbours)])
        return torch.stack([self.images[index], self.images[partner]])


class PairTransform:
    """uint8 [..., 2, 3, H, W] -> the init method's views of the image, then one view of its partner."""

    def __init__(self, views, size: int):
        self.views = views
        self.partner = v2.Compose([v2.RandomResizedCrop(size, scale=(0.3, 1.0), antialias=True),
                                   v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                                   v2.Normalize(MEAN, STD)])

    def __call__(self, pair: torch.Tensor) -> list:
        return self.views(pair.select(-4, 0)) + [self.partner(pair.select(-4, 1))]


def foreground(attention: torch.Tensor, mass: float) -> torch.Tensor:
    """[B, N] float mask of the patches holding `mass` of each row's CLS attention [B, N]."""
    weights, order = attention.sort(dim=1, descending=True)
    share = weights / weights.sum(1, keepdim=True)
    keep = (share.cumsum(1) - share) < mass  # the patch that crosses `mass` is kept
    return torch.zeros_like(attention).scatter(1, order, keep.to(attention.dtype))


def pool(tokens: torch.Tensor, grid: tuple, scale: int) -> torch.Tensor:
    """tokens [B, N, D] on a patch grid -> their means over scale x scale windows [B, N / scale^2, D]."""
    B, _, D = tokens.shape
    return F.avg_pool2d(tokens.transpose(1, 2).reshape(B, D, *grid), scale).flatten(2).transpose(1, 2)


def regions(tokens: torch.Tensor, mask: torch.Tensor, grid: tuple) -> tuple:
    """(region vectors [B, R_all, D], their foreground share [B, R_all]) of tokens [B, N, D] and
    a foreground mask [B, N], average-pooled over the REGION_SCALES windows that fit the grid."""
    scales = [scale for scale in REGION_SCALES if scale <= min(grid)]
    vectors = torch.cat([pool(tokens, grid, scale) for scale in scales], 1)
    shares = torch.cat([pool(mask.unsqueeze(-1), grid, scale)[..., 0] for scale in scales], 1)
    return vectors, shares


class CoTAP(SSLMethod, EMATeacher):
    """The init run's method (`self.base`) plus the dense AP branch (module docstring)."""

    name = "cotap"

    def __init__(self, config: TrainConfig):
        nn.Module.__init__(self)
        self.config = config
        init_state = load_checkpoint(init_checkpoint(config.init), map_location="cpu")
        init_config = TrainConfig.from_dict(init_state["config"])
        if init_config.method not in COTAP_INIT_METHODS:
            raise ValueError(f"--init: cotap continues {', '.join(COTAP_INIT_METHODS)} runs (an EMA teacher); "
                             f"got a {init_config.method} run")
        for name in ("arch", "img_size"):
            if getattr(init_config, name) != getattr(config, name):
                raise ValueError(f"--{name.replace('_', '-')} {getattr(config, name)!r} differs from the --init "
                                 f"run's {getattr(init_config, name)!r}: pass --{name.replace('_', '-')} "
                                 f"{getattr(init_config, name)}")
        from .methods import METHODS

        self.base = METHODS[init_config.method](dataclasses.replace(config, method=init_config.method, init=""))
        self.base.load_state_dict(init_state["method"])
        self.init_method = init_config.method
        d = self.base.embed_dim
        self.filter = ObjectAwareFilter(d, config.cotap_prototypes)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, HEAD_DIM))
        self.teacher_filter, self.teacher_head = self.frozen_copy(self.filter), self.frozen_copy(self.head)
        self.register_buffer("neighbours", torch.zeros(0, config.cotap_neighbours, dtype=torch.int64))

    # ---- the init method's pieces, as the loop sees them ------------------------------------
    @property
    def student(self) -> nn.Module:
        return self.base.student

    @property
    def teacher(self) -> nn.Module:
        return self.base.teacher

    @property
    def embed_dim(self) -> int:
        return self.base.embed_dim

    def eval_backbone(self) -> nn.Module:
        return self.base.eval_backbone()

    def student_patch_count(self, patches: int) -> int:
        return self.base.student_patch_count(patches)

    def lr_scale(self, name: str) -> float:
        """The backbone (student ViT) learns at cotap_backbone_lr_scale x --lr, the heads at --lr."""
        return self.config.cotap_backbone_lr_scale if name.startswith("base.student.") else 1.0

    def make_transform(self):
        return PairTransform(self.base.make_transform(), self.config.img_size)

    def training_images(self, images):
        return PairedImages(images, self, self.config.seed)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.neighbours = torch.empty_like(state_dict["neighbours"])  # its size is the data set's
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ---- set-up on a fresh start: neighbours and prototypes from the init teacher ----------------
    @torch.no_grad()
    def prepare(self, images, device: torch.device, batch: int = 256) -> None:
        """Neighbours of every training image and the filter's prototypes (spherical k-means over
        pooled teacher tokens), from the init teacher; run once, before the first step."""
        teacher = self.base.eval_backbone()
        pooled, bank = [], []
        for start in range(0, len(images), batch):
            x = torch.stack([images[i] for i in range(start, min(start + batch, len(images)))])
            x = v2.Normalize(MEAN, STD)(x.to(device).float() / 255)
            patches = split_tokens(teacher, encode(teacher, x))[1]  # [b, N, d]
            pooled.append(F.normalize(patches.mean(1), dim=-1))
            if len(bank) < 4:  # tokens pooled over 2 x 2 patches, of the first 4 batches
                bank.append(pool(patches, _grid(patches.shape[1]), 2).flatten(0, 1))
        features = torch.cat(pooled)  # [n, d]
        k = min(self.config.cotap_neighbours, len(features) - 1)
        if k < 1:
            raise ValueError("cotap needs at least 2 training images")
        near = [(features[s:s + 1024] @ features.T).index_fill_(1, torch.arange(s, min(s + 1024, len(features)),
                                                                                 device=device), -2.0)
                .topk(k, dim=1).indices for s in range(0, len(features), 1024)]
        self.neighbours = torch.cat(near).to(self.neighbours.device)
        tokens = F.normalize(torch.cat(bank), dim=-1)  # [T, d]
        M = self.config.cotap_prototypes
        if len(tokens) >= M:
            centroids, _, _ = kmeans(tokens.unsqueeze(0).float(), M, seed=self.config.seed)
            prototypes = F.normalize(centroids[0], dim=-1) * self.filter.prototypes.norm(dim=1, keepdim=True)
            self.filter.prototypes.copy_(prototypes.to(self.filter.prototypes))
            self.teacher_filter.prototypes.copy_(self.filter.prototypes)

    # ---- a step ------------------------------------------------------------------------------
    def dense(self, tokens: torch.Tensor, teacher: bool) -> torch.Tensor:
        """Region-head features [B, N, HEAD_DIM] of patch tokens [B, N, d]."""
        return self.teacher_head(self.teacher_filter(tokens)) if teacher else self.head(self.filter(tokens))

    def ap_loss(self, student: tuple, teacher: tuple, views: list) -> torch.Tensor:
        """AP loss of anchor regions (first view) against partner regions. student / teacher:
        (anchor patch tokens [B, N, d], partner patch tokens [B, N, d])."""
        B, N, _ = student[0].shape
        grid = _grid(N)
        with torch.no_grad():
            _, attention = encode_with_cls_attention(self.teacher, torch.cat([views[0], views[-1]]))
            mask = foreground(attention, self.config.cotap_foreground)  # [2B, N]
        R = self.config.cotap_regions
        picked = []
        for side in range(2):
            s_regions, share = regions(self.dense(student[side], False), mask[side * B:(side + 1) * B], grid)
            with torch.no_grad():
                t_regions, _ = regions(self.dense(teacher[side], True), mask[side * B:(side + 1) * B], grid)
            top = share.topk(min(R, share.shape[1]), dim=1).indices.unsqueeze(-1)  # [B, R, 1]
            picked.append([F.normalize(r.gather(1, top.expand(-1, -1, r.shape[-1])), dim=-1).flatten(0, 1)
                           for r in (s_regions, t_regions)])
        (s_anchor, t_anchor), (s_partner, t_partner) = picked  # [B R, D] each
        scores, targets = s_anchor @ s_partner.T, t_anchor @ t_partner.T  # [B R, B R]
        image = torch.arange(B, device=scores.device).repeat_interleave(scores.shape[0] // B)  # [B R]
        same = image.unsqueeze(1) == image.unsqueeze(0)  # anchor and candidate from one pair
        scale = torch.where(same, 1.0, self.config.cotap_alpha).to(scores.dtype)
        return continuous_ap_loss(scores.float(), targets.float(), scale.float(), theta=self.config.cotap_theta,
                                  tau=self.config.cotap_tau)

    def forward(self, views: list, step: int) -> StepOutput:
        base_views, partner = views[:-1], views[-1]
        result = self.base(base_views, step)
        B = partner.shape[0]
        student_partner = split_tokens(self.student, encode(self.student, partner))[1]
        with torch.no_grad():
            teacher_anchor = split_tokens(self.teacher, encode(self.teacher, base_views[0]))[1]
            teacher_partner = split_tokens(self.teacher, encode(self.teacher, partner))[1]
        ap = self.ap_loss((result.student_patches[:B], student_partner), (teacher_anchor, teacher_partner), views)
        stats = dict(result.stats or {}, ap_loss=ap.detach(), base_loss=result.loss.detach())
        return StepOutput(result.loss + self.config.cotap_weight * ap, result.student_patches,
                          result.monitor_patches, stats)

    def after_step(self, step: int) -> None:
        self.base.after_step(step)
        m = self.base.momentum[min(step, len(self.base.momentum) - 1)]
        self.ema_update(self.filter, self.teacher_filter, m)
        self.ema_update(self.head, self.teacher_head, m)


def _grid(patches: int) -> tuple:
    side = int(round(math.sqrt(patches)))
    if side * side != patches:
        raise ValueError(f"cotap needs a square patch grid; got {patches} patches")
    return side, side
