"""Run directories: one writer at a time, failed first runs that can be rerun, and every
command's failure paths ending in one `error:` line with exit code 2, never a traceback."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sdd_fast.cli import main as cli_main
from sdd_fast.selection.checkpoints import select_checkpoints
from sdd_fast.utils.jsonl import JsonLinesError, json_text, read_jsonl
from sdd_fast.utils.runlock import RunLockedError, lock_path, run_lock

# The smallest run the trainers accept: 16 x 16 images (4 patches), 4 images per step, no DSE.
TINY = ["--img-size", "16", "--batch-size", "4", "--no-progress", "--dse-every", "0", "--warmup-steps", "0"]
# With DSE every step: 32 x 32 images (16 patches), 8 per step, checkpoints at steps 0, 1, 2.
WITH_DSE = ["--img-size", "32", "--batch-size", "8", "--dse-every", "1", "--save-every", "1", "--steps", "2"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def sdd_fast_cli(*args, cwd=None):
    """`python -m sdd_fast.cli ARGS` in a child process: (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, "-m", "sdd_fast.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=300)
    return done.returncode, done.stdout, done.stderr


def assert_one_line_error(code, stderr, *words):
    """Exit code 2, an `error:` line naming `words`, and no traceback."""
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    for word in words:
        assert word in errors[0], errors[0]


def train(out, *args):
    """`sdd-fast train` in this process; returns its exit code (2: argparse's error exit)."""
    try:
        return cli_main(["train", "--out", str(out), *TINY, *args])
    except SystemExit as exit_info:
        return exit_info.code


@pytest.fixture
def holder(tmp_path):
    """A child process holding `tmp_path/run`'s train and eval locks until the test ends."""
    run = tmp_path / "run"
    run.mkdir()
    script = textwrap.dedent(f"""
        import sys, time
        from sdd_fast.utils.runlock import run_lock
        with run_lock({str(run)!r}, "train"), run_lock({str(run)!r}, "eval"):
            print("held", flush=True)
            time.sleep(120)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=ENV)
    assert child.stdout.readline().strip() == "held"
    yield run, child.pid
    child.kill()
    child.wait()


# ---- one writer per run directory ---------------------------------------------------------------


def test_a_held_lock_refuses_a_second_writer_naming_its_pid(holder):
    run, pid = holder
    with pytest.raises(RunLockedError, match=f"pid {pid}"):
        with run_lock(run, "train"):
            pass


def test_train_and_eval_refuse_a_directory_another_process_writes(holder):
    run, pid = holder
    code, _, stderr = sdd_fast_cli("train", "--out", run, *TINY, "--steps", "1")
    assert_one_line_error(code, stderr, "in use", f"pid {pid}")
    assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists()
    (run / "config.json").write_text(json.dumps({"data": "synthetic", "img_size": 16}))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "step_000000.pt").write_bytes(b"")
    code, _, stderr = sdd_fast_cli("eval", "--run", run, "--device", "cpu", "--no-progress")
    assert_one_line_error(code, stderr, "in use", f"pid {pid}")
    assert not (run / "eval.jsonl").exists()


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    # A lock file left by a killed holder (its pid recorded, the flock gone with the process).
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.kill()
    child.wait()
    lock_path(tmp_path, "train").write_text(f"pid {child.pid} on elsewhere\n")
    with run_lock(tmp_path, "train"):
        assert lock_path(tmp_path, "train").read_text().startswith(f"pid {os.getpid()} ")
    with run_lock(tmp_path, "train"):  # released at the end of the block
        pass


def test_train_and_eval_locks_are_separate(tmp_path):
    with run_lock(tmp_path, "train"), run_lock(tmp_path, "eval"):
        with pytest.raises(RunLockedError):
            with run_lock(tmp_path, "eval"):
                pass


# ---- a failed first run never blocks its own --out ----------------------------------------------


def write_images(folder, count, corrupt=False):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    if corrupt:
        (folder / "corrupt.png").write_bytes(b"not an image")


def test_a_first_run_that_failed_after_its_initial_checkpoint_can_be_rerun(tmp_path, capsys):
    images = tmp_path / "images"
    write_images(images, 3, corrupt=True)  # the first batch of 4 reads the corrupt image
    out = tmp_path / "run"
    assert train(out, "--steps", "2", "--data", f"imagefolder:{images}") == 2
    err = capsys.readouterr().err
    assert "corrupt.png" in err and "--resume" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000000.pt"]
    (images / "corrupt.png").unlink()
    assert train(out, "--steps", "2", "--data", f"imagefolder:{images}", "--save-every", "1") == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000000.pt", "step_000001.pt",
                                                                     "step_000002.pt"]
    assert [row["step"] for row in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    # A run with progress is still protected.
    assert train(out, "--steps", "2", "--data", f"imagefolder:{images}") == 2
    assert "already holds checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize("option,value,words", [
    ("--lr", "inf", ("--lr", "finite")),
    ("--momentum-teacher", "nan", ("--momentum-teacher", "finite")),
    ("--img-size", "17", ("--img-size 17", "patch size 8")),
    ("--arch", "no_such_vit", ("no_such_vit",)),
    ("--dse-every", "1", ("4 patch tokens", "local_k")),  # 16 x 16 images: too few patches for DSE
])
def test_bad_options_fail_before_any_checkpoint(tmp_path, capsys, option, value, words):
    out = tmp_path / "run"
    assert train(out, "--steps", "1", option, value) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert not (out / "checkpoints").exists()


# ---- one `error:` line for every failure path -----------------------------------------------------


def test_out_that_is_a_file_or_under_a_file_is_one_error_line(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    code, _, stderr = sdd_fast_cli("train", "--out", file, *TINY, "--steps", "1")
    assert_one_line_error(code, stderr, "is a file")
    code, _, stderr = sdd_fast_cli("train", "--out", file / "run", *TINY, "--steps", "1")
    assert_one_line_error(code, stderr, "Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_out_is_one_error_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    code, _, stderr = sdd_fast_cli("train", "--out", folder / "run", *TINY, "--steps", "1")
    assert_one_line_error(code, stderr, "Permission denied")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-step run with DSE and a checkpoint per step (copied by the tests that damage it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code, _, stderr = sdd_fast_cli("train", "--out", out, *TINY, *WITH_DSE)
    assert code == 0, stderr
    return out


def copy_run(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / "copy", ignore=shutil.ignore_patterns(".*.lock"))


def test_resume_of_a_finished_run_prints_strict_json(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    code, stdout, stderr = sdd_fast_cli("train", "--out", run, *TINY, *WITH_DSE, "--resume")
    assert code == 0, stderr

    def reject(token):
        raise AssertionError(f"{token} is not JSON")

    summary = json.loads(stdout.strip().splitlines()[-1], parse_constant=reject)
    assert summary["last_loss"] is None and summary["steps"] == 2


def test_resume_with_a_torn_line_inside_metrics_is_one_error_line(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[0] = lines[0][:10]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    code, _, stderr = sdd_fast_cli("train", "--out", run, *TINY, *WITH_DSE, "--resume")
    assert_one_line_error(code, stderr, "metrics.jsonl:1", "not JSON")


@pytest.mark.parametrize("command", ["select", "report", "eval"])
@pytest.mark.parametrize("line", ["[1, 2]", "7", "{\"step\": "])
def test_an_eval_jsonl_line_that_is_not_an_object_is_one_error_line(finished_run, tmp_path, command, line):
    run = copy_run(finished_run, tmp_path)
    row = {"step": 0, "dse": 1.0, "inter": 1.0, "intra_image": 0.5, "intra_batch": 0.5, "dim": 0.5, "miou": 0.1}
    (run / "eval.jsonl").write_text(line + "\n" + json.dumps(row) + "\n")
    extra = ["--device", "cpu", "--no-progress", "--max-train-images", "4", "--max-val-images", "4",
             "--dse-images", "8", "--dse-seeds", "1", "--probe-epochs", "1"] if command == "eval" else []
    code, _, stderr = sdd_fast_cli(command, "--run", run, *extra)
    assert_one_line_error(code, stderr, "eval.jsonl:1")


def test_read_jsonl_names_the_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"step": 1}\n"text"\n{"step": 2}\n')
    with pytest.raises(JsonLinesError, match=r"rows.jsonl:2 is a JSON str"):
        read_jsonl(path)


def test_unknown_run_and_missing_files_are_one_error_line(tmp_path):
    for command in ("select", "report", "eval"):
        code, _, stderr = sdd_fast_cli(command, "--run", tmp_path / "nothing")
        assert_one_line_error(code, stderr, "nothing")
    code, _, stderr = sdd_fast_cli("select", "--run", tmp_path)
    assert_one_line_error(code, stderr, "no eval.jsonl or metrics.jsonl")


# ---- smaller items -------------------------------------------------------------------------------


def test_stray_temp_files_of_a_killed_writer_are_removed_at_start(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path)
    stray = [run / "checkpoints" / ".step_000003.pt.abcd1234.tmp", run / ".metrics.jsonl.abcd1234.tmp"]
    foreign = run / ".eval.jsonl.abcd1234.tmp"  # another job's file: not train's to delete
    for path in stray + [foreign]:
        path.write_bytes(b"partial")
    assert train(run, *WITH_DSE[:-1], "3", "--resume") == 2  # --steps differs: refused, after the clean-up
    assert not any(path.exists() for path in stray)
    assert foreign.exists()


def test_train_help_offers_no_progress_not_progress(capsys):
    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--no-progress" in text and "hide the progress bar" in text
    assert "--progress" not in text.replace("--no-progress", "")


def test_select_scores_a_checkpoint_with_an_infinite_component_nan():
    rows = [{"step": s, "inter": 1.0 + s, "intra_image": 0.5, "intra_batch": 0.5, "dim": 0.2 * s, "dse": 1.0 + s}
            for s in range(5)]
    rows[3]["inter"] = math.inf
    rows[1]["dse"] = -math.inf
    chosen = select_checkpoints(rows)
    assert math.isnan(chosen.scores[3]) and all(math.isfinite(s) for i, s in enumerate(chosen.scores) if i != 3)
    assert 3 not in chosen.indices
    plain = select_checkpoints(rows, recombine=False)
    assert math.isnan(plain.scores[1]) and 1 not in plain.indices


def test_json_text_writes_non_finite_floats_as_null_at_any_depth():
    assert json.loads(json_text({"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}]})) == \
        {"a": None, "b": [1.0, None, {"c": None}]}


def test_dse_beta_on_too_few_visible_patches_fails_before_any_checkpoint(tmp_path, capsys):
    # MAE's encoder sees a quarter of the 16 patches of a 32 x 32 image: 4, too few for local_k 3.
    out = tmp_path / "run"
    assert train(out, "--steps", "1", "--method", "mae", "--img-size", "32", "--dse-beta", "0.1") == 2
    err = capsys.readouterr().err
    assert "--dse-beta" in err and "4 patch tokens" in err
    assert not (out / "checkpoints").exists()
