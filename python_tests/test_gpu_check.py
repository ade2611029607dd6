"""`make gpu-check GPU_CHECK_DRY_RUN=1`: on a CPU-only machine every step of the GPU check starts
(the build prints its commands, tests and benchmarks are collected, the sanitizer program runs on
CPU tensors), and DIR holds what a lent machine can send back. About 40 s on 2 cores."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ["info", "build", "test-cuda", "memcheck", "racecheck", "synccheck", "bench"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("gpu-check")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS", "GPU_CHECK_"))}
    proc = subprocess.run(["make", "-C", ROOT, "gpu-check", f"OUT={out}", "GPU_CHECK_DRY_RUN=1",
                           f"PYTHON={sys.executable}"], capture_output=True, text=True, timeout=300, env=env)
    return out, proc


def test_every_step_starts(dry_run):
    out, proc = dry_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] and summary["passed"]
    assert [s["name"] for s in summary["steps"]] == STEPS
    assert all(s["status"] == "ok" for s in summary["steps"]), summary["steps"]
    assert "=== [gpu-check] PASSED ===" in proc.stdout  # the summary table comes last


def test_steps_did_their_dry_work(dry_run):
    log = (dry_run[0] / "gpu-check.log").read_text()
    assert "pip install --no-build-isolation --no-deps -e ." in log  # make -n build
    assert re.search(r"\d+/\d+ tests collected", log)  # pytest -m cuda --collect-only
    assert log.count("every op of KERNEL_OPS ran on cpu") == 3  # the sanitizer program, once per tool
    assert "BENCH_DEVICE=cuda BENCH_SHORT=1" in log and "benchmarks/write_results.py" in log  # make -n bench


def test_output_fits_what_a_lent_machine_returns(dry_run):
    """At most 8 files, plain names; RESULTS.md starts as the committed one (its other sections kept)."""
    out = dry_run[0]
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", str(f)) for f in files), files
    with open(os.path.join(ROOT, "benchmarks", "RESULTS.md")) as f:
        assert (out / "RESULTS.md").read_text() == f.read()
