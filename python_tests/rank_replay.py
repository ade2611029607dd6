"""Replays the first step of a two-process DINO torchrun job rank by rank in this process, and
checks the job against it: the logged loss and DSE are the means over ranks, DINO's centre is
all-reduced, the optimiser stepped on the averaged gradient. Used by the one-host torchrun test
(test_train.py) and the two-node test (test_multinode.py)."""

import json

import pytest
import torch

from sdd_fast import dse
from sdd_fast.core.options import DSE_FIELDS
from sdd_fast.train.checkpoint import load_checkpoint


def emulate_ranks(run_dir, world_size=2):
    """The first step of `run_dir` (a torchrun job of `world_size` processes) replayed in this
    process rank by rank from its step-0 checkpoint: per rank its method loss, the DINO centre
    its forward leaves, the student's gradients and the DSE components the monitor measures.
    (The loop's data split, StepPositions: rank r of step t takes positions
    t * world * batch + r * batch + [0, batch).)"""
    from sdd_fast.data import parse_data, train_images
    from sdd_fast.train.config import TrainConfig
    from sdd_fast.train.methods import build_method
    from sdd_fast.train.stream import AugmentedStream, step_loader

    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    start = load_checkpoint(run_dir / "checkpoints" / "step_000000.pt")
    method = build_method(config)
    stream = AugmentedStream(train_images(parse_data(config.data), config.img_size, seed=config.seed),
                             method.make_transform(), config.seed, config.aug_group)
    ranks = []
    for rank in range(world_size):
        views = next(iter(step_loader(stream, 0, 1, config.batch_size, rank, world_size)))
        method.load_state_dict(start["method"])
        method.train()
        method.zero_grad(set_to_none=True)
        result = method(views, 0)
        result.loss.backward()
        grads = {name: p.grad.clone() for name, p in method.named_parameters() if p.grad is not None}
        components = torch.stack(tuple(dse(result.monitor_patches.detach())))  # the monitor's default options
        ranks.append({"loss": float(result.loss.detach()), "center": method.loss_fn.center.clone(), "grads": grads,
                      "dse": components})
    return config, start, method, ranks


def adamw_first_step(config, start, method, grads):
    """The student's weights after the loop's first optimiser step from `start` with `grads`."""
    from sdd_fast.train.loop import param_groups
    from sdd_fast.train.schedule import cosine_schedule

    method.load_state_dict(start["method"])
    optimizer = torch.optim.AdamW(param_groups(method, config.weight_decay), lr=config.lr, fused=True)
    for group in optimizer.param_groups:
        group["lr"] = cosine_schedule(config.lr, config.min_lr, config.steps, config.warmup_steps)[0]
    for name, p in method.named_parameters():
        p.grad = grads[name].clone() if name in grads else None
    torch.nn.utils.clip_grad_norm_(method.parameters(), config.clip_grad)
    optimizer.step()
    return torch.cat([p.detach().flatten() for p in method.student.parameters()])




def check_first_step_of_two_ranks(out, rows):
    """Asserts that step 1 of the two-rank DINO run in `out` (metrics `rows`, checkpoints at
    steps 0 and 1) was synchronised over both ranks."""
    config, start, method, (rank0, rank1) = emulate_ranks(out)
    # Different images per rank: the replayed losses differ, and the log holds their mean.
    assert abs(rank0["loss"] - rank1["loss"]) > 1e-3 * abs(rank0["loss"])
    assert rows[0]["loss"] == pytest.approx((rank0["loss"] + rank1["loss"]) / 2, rel=1e-4)
    # DINO's centre after step 1: 0.1 x the mean teacher output over BOTH ranks' images.
    step1 = load_checkpoint(out / "checkpoints" / "step_000001.pt")
    center = step1["method"]["loss_fn.center"]
    both, alone = (rank0["center"] + rank1["center"]) / 2, rank0["center"]
    assert float((center - both).norm()) <= 1e-4 * float(both.norm())
    assert float((center - alone).norm()) > 0.1 * float(both.norm())
    # Gradients averaged over the ranks before the optimiser step.
    mean_grads = {name: (g + rank1["grads"][name]) / 2 for name, g in rank0["grads"].items()}
    synced = adamw_first_step(config, start, method, mean_grads)
    rank0_only = adamw_first_step(config, start, method, rank0["grads"])
    method.load_state_dict(step1["method"])
    saved = torch.cat([p.detach().flatten() for p in method.student.parameters()])
    assert not torch.equal(synced, rank0_only)
    assert float((saved - synced).norm()) <= 0.1 * float((saved - rank0_only).norm()), (
        float((saved - synced).norm()), float((saved - rank0_only).norm()))
    # The monitor's DSE components: the mean of the two ranks' (each rank measures its own images).
    logged = torch.tensor([rows[0][key] for key in DSE_FIELDS])
    both = (rank0["dse"] + rank1["dse"]).double() / 2
    assert not torch.allclose(rank0["dse"].double(), both, rtol=1e-3)
    assert torch.allclose(logged.double(), both, rtol=1e-4, atol=1e-6), (logged, both)
