"""How strong the DSE regulariser is: ||grad of beta * DSE term|| / ||grad of the SSL loss||.

Both gradients are taken with respect to the student's parameters, on one batch (the first
`batch_size` training images of the run's data, through the method's own view transform with a
fixed torch seed), at a checkpoint's weights, as the training loop forms them: the method's
loss, and `DSERegularizer(beta)(student patch tokens)` (= -beta * DSE). Results are cached per
checkpoint in RUN/grad_norms.json (written atomically), so a resumed study measures nothing twice.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..utils.jsonl import write_json

CACHE = "grad_norms.json"


def _norm(parameters) -> float:
    grads = [p.grad.detach().flatten() for p in parameters if p.grad is not None]
    return float(torch.cat(grads).norm()) if grads else 0.0


def grad_norm_ratio(method, views: list, beta: float, step: int = 0) -> dict:
    """{"loss_grad", "reg_grad", "ratio"} of `method` (an SSLMethod) on `views` at `step`.

    loss_grad: norm of d(SSL loss)/d(student params); reg_grad: norm of
    d(DSERegularizer(beta)(student patches))/d(student params); ratio = reg_grad / loss_grad.
    The method's state (e.g. DINO's centre) is restored afterwards.
    """
    from ..integrations.regularizer import DSERegularizer

    saved = {k: v.clone() for k, v in method.state_dict().items()}
    params = list(method.student.parameters())
    norms = {}
    try:
        for name in ("loss_grad", "reg_grad"):
            method.load_state_dict(saved)
            method.zero_grad(set_to_none=True)
            result = method(views, step)
            term = result.loss if name == "loss_grad" else DSERegularizer(beta)(result.student_patches)
            if term.requires_grad:
                term.backward()
            norms[name] = _norm(params)
    finally:
        method.load_state_dict(saved)
        method.zero_grad(set_to_none=True)
    loss_grad, reg_grad = norms["loss_grad"], norms["reg_grad"]
    norms["ratio"] = reg_grad / loss_grad if loss_grad > 0 else math.nan
    return norms


def one_batch(method, config, seed: int = 0) -> list:
    """The views of the first `config.batch_size` training images of `config.data` (fixed seed)."""
    from ..data import parse_data, train_images

    images = train_images(parse_data(config.data), config.img_size, seed=config.seed)
    batch = torch.stack([images[i] for i in range(min(config.batch_size, len(images)))])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return method.make_transform()(batch)


def measure_checkpoint(path, beta: float, device=None) -> dict:
    """grad_norm_ratio at the checkpoint `path` (a training checkpoint with its config)."""
    from ..train.checkpoint import load_checkpoint
    from ..train.config import TrainConfig
    from ..train.methods import build_method

    state = load_checkpoint(path, map_location="cpu")
    config = TrainConfig.from_dict(state["config"])
    device = torch.device(device or "cpu")
    method = build_method(config)
    method.load_state_dict(state["method"])
    method.to(device).train()
    views = [v.to(device) for v in one_batch(method, config)]
    result = grad_norm_ratio(method, views, beta, step=int(state["step"]))
    result.update(step=int(state["step"]), beta=float(beta))
    return result


def run_grad_norms(run_dir, beta: float, steps=None, device=None) -> list:
    """grad_norm_ratio at the checkpoints of a run (all, or those at `steps`), cached in
    RUN/grad_norms.json; returns one dict per checkpoint by step."""
    from ..train.checkpoint import list_checkpoints

    run_dir = Path(run_dir)
    cache_path = run_dir / CACHE
    cache = {}
    if cache_path.is_file():
        import json

        cache = json.loads(cache_path.read_text())
    results = []
    for step, path in list_checkpoints(run_dir):
        if steps is not None and step not in steps:
            continue
        key = f"{path.name}@{float(beta):g}"
        if key not in cache:
            cache[key] = measure_checkpoint(path, beta, device)
            write_json(cache_path, cache)
        results.append(cache[key])
    return results
