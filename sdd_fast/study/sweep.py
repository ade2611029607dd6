"""The regulariser sweep of one method and seed: final mIoU at each beta, from step 0 and from
the selected checkpoint, and how strong the DSE term's gradient is against the SSL loss's.

- "scratch": ROOT/sweep/scratch_beta<B> trains `steps` steps from the random initialisation
  with --dse-beta B (checkpoints at 0 and at the end); beta 0 is the study's training run itself
  (the same seed and options: the alarm on `warn` changes nothing in training).
- "selected": ROOT/branch_beta<B> branches from the selected checkpoint for branch_steps steps
  (the same directories as the study's two regularisation branches, so those are reused).

For beta > 0 the gradient-norm ratio (gradnorm.py) is measured at the run's first and last
checkpoints, each with its own weights and beta.
"""

from __future__ import annotations

from pathlib import Path

from .plan import StudyPlan


def _record(beta: float, final: dict, grads: list) -> dict:
    return {"beta": beta, "step": final["step"], "miou": final["miou"], "dse": final["dse"],
            "grad": [{key: g[key] for key in ("step", "loss_grad", "reg_grad", "ratio")} for g in grads]}


def sweep_method(plan: StudyPlan, method: str, seed: int, train_dir: Path, rows: list, chosen: dict,
                 progress: bool = True) -> dict:
    """{"scratch": {beta: record}, "selected": {beta: record}} (beta keys as f"{beta:g}"); a
    record is {beta, step, miou, dse, grad: [{step, loss_grad, reg_grad, ratio}]} of the run's
    last evaluated checkpoint."""
    from .gradnorm import run_grad_norms
    from .run import _evaluate, _train, branch

    result = {"scratch": {}, "selected": {}}
    for beta in plan.betas:
        key = f"{beta:g}"
        if beta == 0:
            result["scratch"][key] = _record(beta, rows[-1], [])
        else:
            run_dir = train_dir.parent / "sweep" / f"scratch_beta{key}"
            _train(plan, method, run_dir, progress, seed=seed, dse_beta=beta, save_every=plan.steps)
            final = _evaluate(plan, run_dir, progress)[-1]
            result["scratch"][key] = _record(beta, final, run_grad_norms(run_dir, beta, device=plan.device))
        final = branch(plan, method, seed, train_dir, chosen, beta, progress)
        grads = [] if beta == 0 else run_grad_norms(train_dir.parent / f"branch_beta{key}", beta, device=plan.device)
        result["selected"][key] = _record(beta, final, grads)
    return result
