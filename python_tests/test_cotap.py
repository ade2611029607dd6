"""CoTAP (`--method cotap --init RUN`): trains from the init run's weights, resumes exactly,
evaluates; its pieces (pairs, foreground, regions, filter, learning rates) and its errors."""

import json
import shutil

import pytest
import torch

from sdd_fast.cli import main as cli_main
from sdd_fast.train.checkpoint import load_checkpoint

FAST = ["--img-size", "32", "--batch-size", "8", "--no-progress", "--warmup-steps", "2"]
EVAL_ARGS = ["--device", "cpu", "--probe-epochs", "1", "--dse-images", "16", "--dse-batch", "8", "--dse-seeds", "2",
             "--max-train-images", "16", "--max-val-images", "16", "--no-progress"]


def train(out, *args):
    assert cli_main(["train", "--out", str(out), *FAST, *args]) == 0
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def init_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "dino"
    train(out, "--method", "dino", "--steps", "4", "--save-every", "4")
    return out


def test_cotap_starts_from_the_init_run_trains_resumes_and_evaluates(tmp_path, init_run):
    common = ["--method", "cotap", "--init", str(init_run), "--steps", "6", "--save-every", "3"]
    full = train(tmp_path / "full", *common)
    assert [r["step"] for r in full] == list(range(1, 7))
    assert all(r["ap_loss"] > 0 and r["loss"] == pytest.approx(r["base_loss"] + r["ap_loss"], rel=1e-5)
               for r in full)
    # Step 0 is the init run's last network; the neighbours are stored with the run.
    start = load_checkpoint(tmp_path / "full" / "checkpoints" / "step_000000.pt")
    init = load_checkpoint(init_run / "checkpoints" / "step_000004.pt")
    assert all(torch.equal(start["backbone"][k], v) for k, v in init["backbone"].items())
    neighbours = start["method"]["neighbours"]
    assert neighbours.shape == (2048, 5)
    assert not (neighbours == torch.arange(2048).unsqueeze(1)).any()  # never an image itself
    # Interrupted after step 3, resumed: the same losses as the uninterrupted run.
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "full" / "checkpoints" / "step_000003.pt", part / "checkpoints")
    lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()[:3]
    (part / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    resumed = train(part, *common, "--resume")
    for key in ("loss", "ap_loss", "dse"):
        assert [r[key] for r in resumed[3:]] == pytest.approx([r[key] for r in full[3:]], rel=1e-5), key
    assert cli_main(["eval", "--run", str(tmp_path / "full"), *EVAL_ARGS]) == 0
    rows = [json.loads(line) for line in (tmp_path / "full" / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3, 6] and all(0 <= r["miou"] <= 1 for r in rows)


def test_cotap_weight_zero_is_the_init_method_alone_and_the_dse_regulariser_applies(tmp_path, init_run):
    rows = train(tmp_path, "--method", "cotap", "--init", str(init_run), "--steps", "2", "--cotap-weight", "0",
                 "--dse-beta", "0.01")
    assert all(r["loss"] == pytest.approx(r["base_loss"] - 0.01 * r["reg_dse"], rel=1e-5) for r in rows)


def test_backbone_learns_at_the_scaled_rate(tmp_path, init_run):
    from sdd_fast.train.config import TrainConfig
    from sdd_fast.train.loop import param_groups
    from sdd_fast.train.methods import build_method

    config = TrainConfig(out=str(tmp_path), method="cotap", init=str(init_run), img_size=32,
                         cotap_backbone_lr_scale=0.1)
    method = build_method(config)
    groups = param_groups(method, 0.04)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert all(scale_of[id(p)] == 0.1 for p in method.student.parameters())
    assert all(scale_of[id(p)] == 1.0 for p in (*method.head.parameters(), *method.filter.parameters()))
    assert all(id(p) not in scale_of for p in method.teacher.parameters())  # EMA only


def test_pairs_are_neighbours_drawn_by_position(init_run, tmp_path):
    from sdd_fast.train.config import TrainConfig
    from sdd_fast.train.cotap import PairedImages
    from sdd_fast.train.methods import build_method

    method = build_method(TrainConfig(out=str(tmp_path), method="cotap", init=str(init_run), img_size=32))
    images = [torch.full((3, 4, 4), i, dtype=torch.uint8) for i in range(6)]
    method.neighbours = torch.tensor([[1, 2], [0, 2], [3, 4], [2, 5], [5, 3], [4, 0]])
    paired = PairedImages(images, method, seed=0)
    partners = [int(paired.at_position(i, p)[1, 0, 0, 0]) for p in range(40) for i in range(6)]
    assert all(partner in method.neighbours[i].tolist() for partner, i in zip(partners, [i for _ in range(40)
                                                                                         for i in range(6)]))
    assert len(set(partners[0::6])) == 2  # image 0 meets both of its neighbours over the positions
    assert torch.equal(paired.at_position(3, 17), paired.at_position(3, 17))


def test_foreground_keeps_the_attention_mass_and_regions_pool_it():
    from sdd_fast.train.cotap import ObjectAwareFilter, foreground, regions

    attention = torch.tensor([[0.5, 0.3, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]])
    mask = foreground(attention, 0.6)
    assert mask.tolist() == [[1, 1, 0, 0], [0, 0, 1, 1]]
    tokens = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)
    vectors, shares = regions(tokens, torch.ones(2, 16), (4, 4))
    assert vectors.shape == (2, 4 + 1, 3) and torch.allclose(shares, torch.ones(2, 5))
    assert torch.allclose(vectors[:, -1], tokens.mean(1))  # the 4 x 4 window is the whole image
    filt = ObjectAwareFilter(3, 5)
    assert torch.equal(filt(tokens), tokens)  # starts as the identity (zero output projection)


@pytest.mark.parametrize("args, message", [
    (["--method", "cotap"], "--init is required"),
    (["--method", "dino", "--init", "x"], "--init is for --method cotap"),
    (["--method", "cotap", "--init", "/nonexistent/run"], "no such run directory or checkpoint"),
])
def test_bad_cotap_options_are_named(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--out", str(tmp_path / "run"), *FAST, *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cotap_refuses_an_init_run_without_teacher_or_of_another_size(tmp_path, capsys, init_run):
    mae = tmp_path / "mae"
    train(mae, "--method", "mae", "--steps", "1")
    for args, message in ((["--init", str(mae)], "cotap continues dino, ibot, mocov3 runs"),
                          (["--init", str(init_run), "--img-size", "48"], "--img-size 48 differs")):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["train", "--out", str(tmp_path / "run"), *FAST, "--method", "cotap", *args])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
