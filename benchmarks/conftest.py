"""Benchmarks run with pytest-benchmark: `make bench` (full) or `make bench BENCH_SHORT=1`.

    pytest benchmarks --benchmark-json=build/bench/last.json [--bench-short] [--bench-device cpu]
    python benchmarks/write_results.py build/bench/last.json     # RESULTS.md + scaling.png

Every benchmark records what it measured (device, implementation, pass, sizes, ...) in its
`extra_info`; `write_results.py` builds RESULTS.md and scaling.png from the JSON. The CPU
benchmarks run with 2 threads (the targets are stated for 2), CUDA ones when a GPU is visible
and the extension has its CUDA kernels.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_utils, the baselines

import bench_utils  # noqa: E402

import sdd_fast  # noqa: E402
from sdd_fast.utils.devices import cpu_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    group = parser.getgroup("sdd-fast benchmarks")
    group.addoption("--bench-short", action="store_true", default=False,
                    help="short mode (also BENCH_SHORT=1): few rounds, small grid, a few trainer steps")
    group.addoption("--bench-device", default=os.environ.get("BENCH_DEVICE", "") or "all",
                    choices=("all", "cpu", "cuda"),
                    help="devices to benchmark (also BENCH_DEVICE): all available (default), cpu or cuda")


def pytest_configure(config):
    if config.getoption("--bench-short"):
        bench_utils.configure(True)
    devices = bench_utils.available_devices()
    wanted = config.getoption("--bench-device")
    if wanted not in ("all", "cpu", "cuda"):
        raise pytest.UsageError(f"--bench-device / BENCH_DEVICE must be all, cpu or cuda; got {wanted!r}")
    if wanted != "all":
        if wanted not in devices:
            raise pytest.UsageError(f"--bench-device {wanted}: not available here (CUDA visible: "
                                    f"{torch.cuda.is_available()}, sdd_fast CUDA kernels: {sdd_fast.has_cuda()})")
        devices = [wanted]
    config._sdd_bench_devices = devices
    bench_utils.set_devices(devices)


def pytest_report_header(config):
    return (f"sdd_fast benchmarks: mode={'short' if bench_utils.SHORT else 'full'} "
            f"devices={config._sdd_bench_devices} compiled={sdd_fast.has_ops()} "
            f"cuda_kernels={sdd_fast.has_cuda()} torch={torch.__version__} cpu_threads={bench_utils.THREADS}")


def pytest_generate_tests(metafunc):
    """`device` parametrises over the benchmarked devices (cpu, and cuda when present)."""
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", metafunc.config._sdd_bench_devices)


@pytest.fixture(autouse=True)
def _two_threads():
    """The CPU targets are stated for 2 threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(bench_utils.THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def feats_for():
    """feats_for(B, N, d, device): embedded structured features (cached per size and device)."""
    from sdd_fast.core.synthetic import structured_feats

    cache = {}

    def get(B, N, d, device):
        key = (B, N, d, str(device))
        if key not in cache:
            cache[key] = structured_feats(images=B, patches=N, dim=d).to(device)
        return cache[key]
    return get


# ---- machine description for RESULTS.md -------------------------------------------------------
def _git(*args) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def pytest_benchmark_update_machine_info(config, machine_info):
    commit = _git("rev-parse", "--short=12", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    devices = getattr(config, "_sdd_bench_devices", ["cpu"])
    machine_info["sdd"] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "short" if bench_utils.SHORT else "full",
        "devices": devices,
        "commit": commit + ("+dirty" if dirty and commit else ""),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "sdd_cuda_kernels": sdd_fast.has_cuda(),
        "sdd_cuda_version": sdd_fast.cuda_version(),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the ATen kernels' ISA: AVX2, AVX512, ...
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_threads": bench_utils.THREADS,
        "cuda_device": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "cuda_driver": _cuda_driver() if "cuda" in devices else None,
    }


def _cuda_driver():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        return out.splitlines()[0] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


# ---- skip reasons (e.g. the trainer not available yet) go into the JSON for RESULTS.md ----------
_SKIPPED = {}


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        _SKIPPED[report.nodeid] = str(report.longrepr[2]).removeprefix("Skipped: ")


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["sdd_skipped"] = dict(_SKIPPED)
