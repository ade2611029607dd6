"""`sdd-fast train` across two nodes: torchrun --nnodes 2 --nproc-per-node 1 with a c10d
rendezvous, each node in its own network namespace (two_nodes.py), gloo on the CPU.

Skipped, with the reason, where network namespaces cannot be created (not root, no iproute2)."""

import json
import shutil

import pytest
from rank_replay import check_first_step_of_two_ranks
from two_nodes import TwoNodes, unavailable_reason

from sdd_fast.train.checkpoint import load_checkpoint

FAST = ["--img-size", "32", "--batch-size", "8", "--no-progress", "--warmup-steps", "2", "--method", "dino",
        "--steps", "4", "--device", "cpu"]


@pytest.fixture
def two_nodes():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        nodes = TwoNodes.create()
    except RuntimeError as error:
        pytest.skip(f"cannot create network namespaces here: {error}")
    yield nodes
    nodes.delete()


def train_on_two_nodes(nodes, out, *args):
    """Trains on both nodes (node 1 sees `out` read-only); returns the metrics rows."""
    out.mkdir(parents=True, exist_ok=True)
    results = nodes.torchrun(str(out), ["-m", "sdd_fast.cli", "train", "--out", str(out), *FAST, *args])
    for node, result in enumerate(results):
        assert result.returncode == 0, f"node {node}:\n{result.stderr[-4000:]}"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # Rank 0 prints the summary, with the logged (mean over ranks) loss of the last step.
    summary = json.loads(results[0].stdout.strip().splitlines()[-1])
    assert summary["last_loss"] == pytest.approx(rows[-1]["loss"]) and not results[1].stdout.strip()
    return rows


def checkpoint_steps(out):
    return sorted(int(p.name[5:11]) for p in (out / "checkpoints").glob("step_*.pt"))


@pytest.mark.slow
def test_two_nodes_train_as_one_job_and_resume_across_both(tmp_path, two_nodes):
    full = tmp_path / "full"
    rows = train_on_two_nodes(two_nodes, full, "--save-every", "1")
    # Rank 0 alone wrote (node 1 could not have: its view of the run directory is read-only):
    # one row per step, one checkpoint per save.
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert checkpoint_steps(full) == [0, 1, 2, 3, 4]
    assert load_checkpoint(full / "checkpoints" / "step_000004.pt")["step"] == 4
    # Step 1 was one job over both nodes: loss and DSE are the means of the two ranks' (each on
    # its own images), DINO's centre and the gradients were all-reduced across the veth link.
    check_first_step_of_two_ranks(full, rows)

    # Interrupted after step 2 (its checkpoint and rows), resumed on both nodes.
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_000002.pt", part / "checkpoints")
    lines = (full / "metrics.jsonl").read_text().splitlines()[:2]
    (part / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    resumed = train_on_two_nodes(two_nodes, part, "--save-every", "1", "--resume")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for key in ("loss", "dse", "inter", "dim"):
        assert [r[key] for r in resumed[2:]] == pytest.approx([r[key] for r in rows[2:]], rel=1e-5), key
