"""Bundled trainers: every method trains on the CPU, resumes exactly, and fails clearly.

The longest runs (every method's 32 steps, the two-process torchrun job) are marked slow:
`make test-all` (and CI) run them, `make test` does not."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from rank_replay import check_first_step_of_two_ranks

from sdd_fast.cli import main as cli_main
from sdd_fast.train.checkpoint import load_checkpoint
from sdd_fast.train.config import SSL_METHODS

# Small and fast: 32 x 32 images (16 patches of 8 x 8), 8 images per step.
FAST = ["--img-size", "32", "--batch-size", "8", "--no-progress", "--warmup-steps", "2"]


def train(out, *args):
    """Runs `sdd-fast train` in this process; returns the metrics rows."""
    assert cli_main(["train", "--out", str(out), *FAST, *args]) == 0
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def mean(values):
    return sum(values) / len(values)


@pytest.mark.slow
@pytest.mark.parametrize("method", SSL_METHODS)
def test_each_method_trains_logs_dse_and_its_loss_falls(tmp_path, method):
    # 16 images per step: with 8, MoCo v3's 8-negative contrastive loss is too noisy to compare.
    rows = train(tmp_path, "--method", method, "--steps", "32", "--save-every", "16", "--lr", "2e-3",
                 "--batch-size", "16")
    assert [r["step"] for r in rows] == list(range(1, 33))
    for key in ("loss", "lr", "dse", "inter", "intra_image", "intra_batch", "dim", "dse_ms", "step_ms"):
        assert all(key in r and r[key] is not None for r in rows), key
    # DINO / iBOT: the cross-entropy first rises towards log K while centring flattens the
    # teacher (the teacher's entropy, which the student cannot lower); what the student learns
    # is the KL part, loss - teacher_entropy. MoCo v3 / MAE: the loss itself.
    key = "kl" if method in ("dino", "ibot") else "loss"
    losses = [r[key] for r in rows]
    assert mean(losses[-8:]) < mean(losses[:8]), losses
    steps = sorted(int(p.name[5:11]) for p in (tmp_path / "checkpoints").iterdir())
    assert steps == [0, 16, 32]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"] == method and config["steps"] == 32
    state = load_checkpoint(tmp_path / "checkpoints" / "step_000032.pt")
    assert state["step"] == 32 and "pos_embed" in state["backbone"]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    common = ["--method", "dino", "--steps", "8", "--save-every", "4"]
    full = train(tmp_path / "full", *common)
    # An interrupted run: checkpoint 4 exists, rows up to 6 were logged, the last one torn.
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "full" / "checkpoints" / "step_000004.pt", part / "checkpoints")
    lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()[:6]
    (part / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 7, "lo')
    resumed = train(part, *common, "--resume")
    assert [r["step"] for r in resumed] == list(range(1, 9))  # no step twice
    assert [r["loss"] for r in resumed[4:]] == pytest.approx([r["loss"] for r in full[4:]], rel=1e-5)
    assert [r["dse"] for r in resumed[4:]] == pytest.approx([r["dse"] for r in full[4:]], rel=1e-4)


def test_resume_refuses_changed_options_and_fresh_run_refuses_existing_run(tmp_path, capsys):
    train(tmp_path, "--method", "mae", "--steps", "2")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--out", str(tmp_path), *FAST, "--method", "mae", "--steps", "2"])
    assert exit_info.value.code == 2 and "--resume" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--out", str(tmp_path), *FAST, "--method", "mae", "--steps", "2", "--seed", "5",
                  "--resume"])
    assert exit_info.value.code == 2 and "--seed" in capsys.readouterr().err


def test_branch_with_the_same_options_continues_the_run_and_refuses_changed_ones(tmp_path, capsys):
    common = ["--method", "dino", "--steps", "8", "--save-every", "4"]
    full = train(tmp_path / "full", *common)
    start = tmp_path / "full" / "checkpoints" / "step_000004.pt"
    branch = train(tmp_path / "branch", *common, "--branch-from", str(start))
    assert [r["step"] for r in branch] == [5, 6, 7, 8]
    assert [r["loss"] for r in branch] == pytest.approx([r["loss"] for r in full[4:]], rel=1e-5)
    steps = sorted(int(p.name[5:11]) for p in (tmp_path / "branch" / "checkpoints").iterdir())
    assert steps == [4, 8]  # the branch point is the branch's first checkpoint
    # --steps and --dse-beta may change; the regularised branch logs the student's DSE.
    longer = train(tmp_path / "longer", "--method", "dino", "--steps", "10", "--save-every", "4",
                   "--dse-beta", "0.01", "--branch-from", str(start))
    assert [r["step"] for r in longer] == [5, 6, 7, 8, 9, 10] and all("reg_dse" in r for r in longer)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--out", str(tmp_path / "bad"), *FAST, *common, "--lr", "0.5",
                  "--branch-from", str(start)])
    assert exit_info.value.code == 2 and "cannot branch" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--out", str(tmp_path / "bad2"), *FAST, "--method", "dino", "--steps", "4",
                  "--branch-from", str(start)])
    assert exit_info.value.code == 2 and "--steps 4 must exceed" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_broken_checkpoint_gives_an_error_naming_the_file(tmp_path, capsys, damage):
    train(tmp_path, "--method", "mae", "--steps", "2", "--save-every", "1")
    path = tmp_path / "checkpoints" / "step_000002.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--out", str(tmp_path), *FAST, "--method", "mae", "--steps", "4", "--resume"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and str(path) in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--method", "simclr"], "--method"),
    (["--steps", "0"], "--steps"),
    (["--batch-size", "x"], "--batch-size"),
    (["--data", "nowhere:/x"], "--data"),
    (["--data", "imagefolder:/does/not/exist"], "--data"),
    (["--logger", "wandb"], "--logger"),
    (["--mask-ratio", "1.5"], "--mask-ratio"),
    (["--teacher-temp", "0"], "--teacher-temp"),
    (["--aug-group", "0"], "--aug-group"),
    (["--device", "tpu"], "--device"),
])
def test_bad_options_give_a_message_not_a_traceback(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err


def student_grads(method, views, beta=None):
    """{name: gradient} of the student's parameters after one forward / backward of `views`
    (step 0): of the method's loss alone (beta None) or plus DSERegularizer(beta) of the
    student's patch tokens, as the training loop adds it."""
    from sdd_fast import DSERegularizer

    method.zero_grad(set_to_none=True)
    result = method(views, 0)
    loss = result.loss if beta is None else result.loss + DSERegularizer(beta)(result.student_patches)
    loss.backward()
    return {name: p.grad.clone() for name, p in method.student.named_parameters() if p.grad is not None}


def flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.flatten() for _, g in sorted(grads.items())])


@pytest.mark.parametrize("method_name", ["dino", "mocov3"])
def test_dse_beta_adds_minus_beta_times_the_dse_gradient_to_the_student(method_name, one_thread):
    """Same weights, same batch: the student's gradients with DSERegularizer(0) are exactly the
    method loss's; with beta > 0 they differ, by -beta x the gradient of DSE(student patches)."""
    from sdd_fast import dse
    from sdd_fast.train.config import TrainConfig
    from sdd_fast.train.methods import build_method

    method = build_method(TrainConfig(out="unused", method=method_name, img_size=32))
    method.train()
    start = {k: v.clone() for k, v in method.state_dict().items()}  # DINO's forward moves its centre
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    views = method.make_transform()(images)

    def fresh():
        method.load_state_dict(start)
        return method

    plain = student_grads(fresh(), views)
    beta0 = student_grads(fresh(), views, beta=0.0)
    beta = 0.5
    regularized = student_grads(fresh(), views, beta=beta)
    fresh().zero_grad(set_to_none=True)
    dse(method(views, 0).student_patches).dse.backward()
    dse_grad = {name: p.grad.clone() for name, p in method.student.named_parameters() if p.grad is not None}

    assert set(plain) == set(beta0) == set(regularized) and len(plain) > 10
    assert all(torch.equal(plain[name], beta0[name]) for name in plain)
    assert set(dse_grad) <= set(plain) and len(dse_grad) > 10  # DSE reaches the backbone's weights
    change = flat(regularized) - flat(plain)
    expected = -beta * flat({name: dse_grad.get(name, torch.zeros_like(g)) for name, g in plain.items()})
    assert float(change.norm()) > 1e-3 * float(flat(plain).norm())  # a real change, not rounding
    assert float((change - expected).norm()) <= 1e-3 * float(expected.norm())


def test_dse_beta_enters_the_training_loss_and_changes_the_run(tmp_path, one_thread):
    """`train --dse-beta 0.5`: step 1 (same weights) logs the method's loss minus 0.5 x the
    student's DSE (reg_dse, the DSE of the student's first-view patches); from step 2 on the
    student, trained on that loss, differs from the unregularised run's (its KL part)."""
    plain = train(tmp_path / "plain", "--method", "dino", "--steps", "3")
    rows = train(tmp_path / "reg", "--method", "dino", "--steps", "3", "--dse-beta", "0.5")
    assert all(r["reg_dse"] is not None for r in rows)
    assert all("reg_dse" not in r or r["reg_dse"] is None for r in plain)
    assert rows[0]["kl"] == pytest.approx(plain[0]["kl"], rel=1e-6)  # the method's own loss: unchanged
    assert rows[0]["loss"] == pytest.approx(plain[0]["loss"] - 0.5 * rows[0]["reg_dse"], rel=1e-5)
    assert rows[0]["dse"] == pytest.approx(plain[0]["dse"], rel=1e-5)  # the teacher's tokens before any update
    assert rows[0]["reg_dse"] == pytest.approx(rows[0]["dse"], rel=1e-5)  # step 1: the student is still the teacher
    assert all(abs(r["kl"] - p["kl"]) > 1e-6 * abs(p["kl"]) for r, p in zip(rows[1:], plain[1:])), (rows, plain)


def test_csv_and_tensorboard_loggers(tmp_path):
    train(tmp_path, "--method", "mae", "--steps", "3", "--logger", "csv,tensorboard")
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss,lr,dse") and len(lines) == 4
    assert any((tmp_path / "tensorboard").iterdir())


@pytest.mark.slow
def test_torchrun_two_cpu_processes_split_the_batch_and_average_gradients(tmp_path):
    """`torchrun --nproc_per_node=2`: rank 0 alone writes; the two ranks trained on different
    images (the logged step-1 loss is the mean of the two ranks' losses, replayed here, not
    rank 0's), DINO's centre is all-reduced over both ranks' teacher outputs, and the step-1
    weights are the AdamW step of the AVERAGED gradient (DistributedDataParallel), not of
    rank 0's own."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "sdd_fast.cli", "train", "--out", str(out), *FAST, "--method", "dino", "--steps", "3",
           "--save-every", "1", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # rank 0 alone writes
    assert all(r["dse"] is not None for r in rows)
    assert load_checkpoint(out / "checkpoints" / "step_000003.pt")["step"] == 3

    check_first_step_of_two_ranks(out, rows)


@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_teacher_temp_sharpens_every_distillation_loss(method):
    from sdd_fast.train.config import TrainConfig
    from sdd_fast.train.methods import build_method

    built = build_method(TrainConfig(out="unused", method=method, img_size=32, teacher_temp=0.03))
    losses = [built.loss_fn] + ([built.patch_loss_fn] if method == "ibot" else [])
    assert all(loss.teacher_temp == 0.03 for loss in losses)
    logits = torch.randn(2, 4, built.loss_fn.center.numel())
    sharp, default = losses[0].teacher_probs(logits), torch.softmax(logits / 0.04, dim=-1)
    assert (built.loss_fn.entropies(sharp) < built.loss_fn.entropies(default)).all()


@pytest.mark.parametrize("mask_ratio", [0.05, 0.3, 0.5])
def test_ibot_patch_loss_positions_hold_every_masked_patch(mask_ratio):
    """The patch heads run on R gathered positions per image: every masked patch is among them
    (first), `valid` marks exactly those, so the masked mean over them equals the one over all."""
    from sdd_fast.train.config import TrainConfig
    from sdd_fast.train.methods import build_method

    built = build_method(TrainConfig(out="unused", method="ibot", img_size=32, mask_ratio=mask_ratio))
    mask = built.random_masks(64, 49, torch.Generator().manual_seed(2), "cpu")  # [64, 49]
    index, valid = built.loss_positions(mask)
    counts = mask.sum(1)
    assert int(counts.max()) <= index.shape[1] < 49  # fewer positions than patches: the saving
    for row, count in enumerate(counts.tolist()):
        assert set(index[row, :count].tolist()) == set(mask[row].nonzero().flatten().tolist())
        assert valid[row].tolist() == [1.0] * count + [0.0] * (index.shape[1] - count)
    values = torch.randn(64, 49)
    over_all = ((values * mask).sum(1) / counts.clamp_min(1)).mean()
    gathered = ((values.gather(1, index) * valid).sum(1) / valid.sum(1).clamp_min(1)).mean()
    assert torch.allclose(over_all, gathered, atol=1e-6)
    tokens = torch.randn(64, 49, 5)
    assert torch.equal(built.gather_tokens(tokens, index)[3, 1], tokens[3, index[3, 1]])
