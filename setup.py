"""Build of sdd_fast._C with torch.utils.cpp_extension (ninja), against the installed torch.

Environment knobs:
  SDD_FORCE_CUDA=1   compile csrc/cuda/ or fail (CI sets it: a CUDA build error fails CI)
  SDD_NO_CUDA=1      skip csrc/cuda/ even when torch and nvcc could build it
  SDD_DEBUG=1        -O0 -g, no NDEBUG
  TORCH_CUDA_ARCH_LIST  GPU architectures (default without a GPU: "9.0")
  MAX_JOBS           parallel compile jobs (ninja)

The version carries the torch and CUDA of the build as its local part (sdd_fast/_version.py):
0.1.0+pt2141cu130, or 0.1.0+pt2141cpu for a CPU-only build; `make wheel` builds wheels with it.
"""

import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def guess_cuda_home():
    """Toolkit root, also when `nvcc` on PATH is a wrapper script (torch guesses wrong then)."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return "/usr/local/cuda" if os.path.exists("/usr/local/cuda/bin/nvcc") else None
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "probe.cu")
        open(probe, "w").close()
        try:
            out = subprocess.run([nvcc, "--dryrun", "-c", probe, "-o", probe + ".o"],
                                 capture_output=True, text=True, timeout=60)
            match = re.search(r"TOP=(\S+)", out.stdout + out.stderr)
            if match:
                return os.path.realpath(match.group(1).strip("\"'"))  # TOP is already <root>/bin/..
        except (OSError, subprocess.SubprocessError):
            pass
    return os.path.realpath(os.path.join(os.path.dirname(os.path.realpath(nvcc)), ".."))


def nvidia_wheel_includes():
    """Include dirs of the pip `nvidia-*` wheels (cuBLAS / cuSPARSE headers torch's CUDA headers need)."""
    dirs = []
    for site in sys.path:
        dirs += glob.glob(os.path.join(site, "nvidia", "*", "include"))
    return sorted({d for d in dirs if os.path.isdir(d)})


def openmp_flags() -> list:
    """`-fopenmp` where torch runs its CPU threads on OpenMP (Linux builds): ATen's inline
    `at::parallel_for` compiles to a serial loop without it. Compile flag only: the OpenMP
    symbols resolve to the runtime torch already loads (its libgomp), so no second runtime."""
    import torch

    return ["-fopenmp"] if sys.platform.startswith("linux") and torch._C.has_openmp else []


def load_version_module():
    """sdd_fast/_version.py, loaded by path (importing sdd_fast would load its compiled library)."""
    spec = importlib.util.spec_from_file_location("sdd_fast_version", os.path.join(ROOT, "sdd_fast", "_version.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_ext_writing_build_info(base, build_info: dict):
    """`base` (torch's BuildExtension) that also writes _build_info.json next to the compiled
    library: into the source tree for an editable / in-place build, into the wheel's build tree
    for `pip wheel`. sdd_fast reads it at import before loading the library, so a torch or CUDA
    mismatch is a clear error, not an undefined symbol."""

    class BuildExtWithInfo(base):
        def run(self):
            super().run()
            path = os.path.join(os.path.dirname(self.get_ext_fullpath("sdd_fast._C")), "_build_info.json")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(build_info, f)
                f.write("\n")

    return BuildExtWithInfo


def build_extension():
    import torch

    force_cuda, no_cuda = env_flag("SDD_FORCE_CUDA"), env_flag("SDD_NO_CUDA")
    if force_cuda and no_cuda:
        sys.exit("SDD_FORCE_CUDA=1 and SDD_NO_CUDA=1 contradict each other")
    if not no_cuda and guess_cuda_home():
        os.environ.setdefault("CUDA_HOME", guess_cuda_home())
    # Imported only now: torch.utils.cpp_extension fixes its CUDA_HOME at import, from `which nvcc`
    # when CUDA_HOME is unset (here /usr/local for the wrapper /usr/local/bin/nvcc: no libcudart there).
    import torch.utils.cpp_extension as cpp_ext
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    cpp_ext.CUDA_HOME = os.environ.get("CUDA_HOME") or cpp_ext.CUDA_HOME
    cuda_possible = torch.version.cuda is not None and cpp_ext.CUDA_HOME is not None
    with_cuda = cuda_possible and not no_cuda
    if force_cuda and not with_cuda:
        sys.exit(f"SDD_FORCE_CUDA=1 but CUDA cannot be built: torch.version.cuda={torch.version.cuda}, "
                 f"CUDA_HOME={cpp_ext.CUDA_HOME}. Install a CUDA build of torch and the CUDA toolkit (nvcc).")
    if with_cuda and not torch.cuda.is_available():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")

    debug = env_flag("SDD_DEBUG")
    cxx = ["-O0", "-g"] if debug else ["-O3", "-DNDEBUG"]
    # -fno-math-errno: std::sqrt becomes one instruction, so the lane-parallel eigensolver vectorises.
    cxx += ["-fvisibility=hidden", "-fno-math-errno"] + openmp_flags()
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/inputs/*.cpp") + glob.glob("csrc/autograd/*.cpp")
                     + glob.glob("csrc/cpu/*.cpp"))
    macros = []
    kwargs = dict(name="sdd_fast._C", include_dirs=[os.path.join(ROOT, "csrc")],
                  extra_compile_args={"cxx": cxx}, define_macros=macros)
    if with_cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        kwargs["define_macros"] = macros + [("SDD_WITH_CUDA", None)]
        kwargs["include_dirs"] += nvidia_wheel_includes()
        kwargs["extra_compile_args"]["nvcc"] = (["-O0", "-g", "-G"] if debug else ["-O3"]) + [
            "--expt-relaxed-constexpr", "-lineinfo"]
        ext = CUDAExtension(sources=sources, **kwargs)
    else:
        ext = CppExtension(sources=sources, **kwargs)
    build_info = {"torch": torch.__version__, "cuda": torch.version.cuda if with_cuda else None}
    print(f"sdd_fast: building {'CPU + CUDA' if with_cuda else 'CPU only'} "
          f"(torch {torch.__version__}, CUDA_HOME={cpp_ext.CUDA_HOME})", flush=True)
    version = load_version_module().build_version(build_info["torch"], build_info["cuda"])
    build_ext = build_ext_writing_build_info(BuildExtension.with_options(use_ninja=True), build_info)
    return version, [ext], {"build_ext": build_ext}


version, ext_modules, cmdclass = build_extension()
setup(
    version=version,
    packages=find_packages(include=["sdd_fast", "sdd_fast.*"]),
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
