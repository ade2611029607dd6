#!/usr/bin/env bash
# `make gpu-check OUT=DIR`: the one command a machine with a GPU runs (an existing interpreter with
# torch, no package registry, nvcc and compute-sanitizer installed). Finishes within 8 minutes.
#
#   benchmarks/gpu_check.sh DIR [--dry-run]
#
# Steps, in order, each under `timeout` (a failing step does not stop the others):
#   info         nvidia-smi; python, torch, GPU, nvcc and compute-sanitizer versions
#   build        make build REBUILD=1 SDD_FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=$(nproc), then
#                every op must have a CUDA kernel (sdd_fast.missing_cuda_kernels() empty)
#   test-cuda    pytest python_tests -m cuda: python_tests/test_cuda.py and every other test marked
#                cuda, including the cuda case of every test using the `device` fixture (conftest.py)
#   memcheck, racecheck, synccheck
#                compute-sanitizer on benchmarks/cuda_sanitize_ops.py (every op forward and backward)
#   bench        make bench BENCH_DEVICE=cuda BENCH_SHORT=1 (trainer runs left out: GPU_CHECK_BENCH_ARGS),
#                the GPU section merged into a copy of the committed benchmarks/RESULTS.md
# A lent machine returns at most 8 files, so DIR holds only: gpu-check.log (every step's output in
# order), summary.json (status, exit code, seconds and last lines of every step), RESULTS.md,
# scaling.png and last.json (pytest-benchmark's JSON: `python benchmarks/write_results.py
# DIR/last.json` merges the GPU section into benchmarks/RESULTS.md here).
#
# --dry-run (or GPU_CHECK_DRY_RUN=1), for a CPU-only machine (python_tests/test_gpu_check.py): every
# step starts, and what needs a GPU is replaced: the build only prints its commands (make -n), the
# tests and benchmarks are collected, not run, and the sanitizer program runs on CPU tensors without
# compute-sanitizer.
#
# Environment: PYTHON (default python3), TORCH_CUDA_ARCH_LIST (default 9.0), MAX_JOBS (default: all
# cores), GPU_CHECK_BUDGET_S (default 460: the whole run; each step gets at most its own cap and
# what is left after keeping a minimum for the steps after it), GPU_CHECK_BENCH_ARGS (extra pytest
# arguments of the benchmarks; default --ignore=benchmarks/test_bench_trainer.py).
# Exit status: 0 when every step passed (a sanitizer the machine refuses, "Device not supported"
# under gVisor, counts as unsupported, not failed), 1 otherwise, 2 on a usage error.
set -uo pipefail  # no -e: every step runs whatever the others did

SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
export PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
export GPU_CHECK_BENCH_ARGS=${GPU_CHECK_BENCH_ARGS---ignore=benchmarks/test_bench_trainer.py}
case "${GPU_CHECK_DRY_RUN:-0}" in "" | 0 | false | no) export GPU_CHECK_DRY_RUN=0 ;; *) export GPU_CHECK_DRY_RUN=1 ;; esac
BUDGET=${GPU_CHECK_BUDGET_S:-460}
# A clean sub-make: none of a calling make's flags or command-line variables leak into it.
SUBMAKE=(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$ROOT")
BUILD_VARS=(PYTHON="$PYTHON" SDD_FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" MAX_JOBS="$MAX_JOBS")
PYTEST=("$PYTHON" -m pytest -p no:cacheprovider)

# name, cap (s), minimum kept for it while earlier steps run (s)
STEPS=(info build test-cuda memcheck racecheck synccheck bench)
CAPS=(30 240 90 60 45 60 45 150)
KEEP=(0 0 20 15 15 15 15 60)

dry() { [ "$GPU_CHECK_DRY_RUN" = 1 ]; }

find_sanitizer() {
  command -v compute-sanitizer 2>/dev/null && return
  local c
  for c in /usr/local/cuda/bin/compute-sanitizer "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer"; do
    if [ -x "$c" ]; then echo "$c"; return; fi
  done
  return 1
}

# ---- the steps (run as `gpu_check.sh --step NAME` under timeout, in the repository root) ---------
step_info() {
  echo "host: $(uname -srm), $(nproc) cores; date $(date -u '+%Y-%m-%d %H:%M UTC'); dry run: $GPU_CHECK_DRY_RUN"
  nvidia-smi || echo "nvidia-smi: not available"
  echo "nvcc: $(command -v nvcc || echo 'not on PATH') $(nvcc --version 2>/dev/null | tail -n 1)"
  local san
  san=$(find_sanitizer) && echo "compute-sanitizer: $san ($("$san" --version 2>/dev/null | tail -n 1))" \
    || echo "compute-sanitizer: not found"
  "$PYTHON" - <<'EOF'
import os, sys
import torch
print(f"python {sys.version.split()[0]} ({sys.executable}); torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, cpu threads {torch.get_num_threads()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.1f} GiB")
else:
    print("GPU: none visible to torch")
    if os.environ.get("GPU_CHECK_DRY_RUN") != "1":
        sys.exit("info: torch sees no CUDA GPU; every GPU step will fail")
EOF
}

kernels_check() {  # prints what the loaded library has; fails when an op lacks its CUDA kernel
  "$PYTHON" - <<'EOF'
import os, sys
import sdd_fast
missing = sdd_fast.missing_cuda_kernels()
print(f"sdd_fast: ops {sdd_fast.has_ops()}, built with CUDA {sdd_fast.cuda_version()}, every op has a CUDA "
      f"kernel {sdd_fast.has_cuda()}" + (f" (missing: {', '.join(missing)})" if missing else ""))
sys.exit(1 if missing and os.environ.get("GPU_CHECK_DRY_RUN") != "1" else 0)
EOF
}

step_build() {
  if dry; then
    echo "dry run: the commands of: make build REBUILD=1 ${BUILD_VARS[*]}"
    "${SUBMAKE[@]}" -n build REBUILD=1 "${BUILD_VARS[@]}" || return
  else
    "${SUBMAKE[@]}" build REBUILD=1 "${BUILD_VARS[@]}" || return
  fi
  kernels_check
}

step_test_cuda() {
  if dry; then
    "${PYTEST[@]}" python_tests -m cuda --collect-only -q
  else
    "${PYTEST[@]}" python_tests -m cuda -q -rfEsP  # -rP: the peak-memory test's printed line
  fi
}

step_sanitizer() {
  local tool=$1 san
  san=$(find_sanitizer) || san=""
  if dry; then
    echo "dry run: compute-sanitizer --tool $tool (${san:-not found here}) would run the program below on CUDA"
    "$PYTHON" benchmarks/cuda_sanitize_ops.py --device cpu
    return
  fi
  if [ -z "$san" ]; then echo "compute-sanitizer: not on PATH nor under /usr/local/cuda/bin"; return 1; fi
  # No caching allocator: every tensor is its own cudaMalloc, so an out-of-bounds access is not
  # hidden inside a larger cached block.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$san" --tool "$tool" --error-exitcode 86 --print-limit 50 \
    "$PYTHON" benchmarks/cuda_sanitize_ops.py --device cuda
}

step_bench() {
  local out=$GPU_CHECK_OUT
  # the base whose other devices' sections write_results.py keeps
  cp "$ROOT/benchmarks/RESULTS.md" "$out/RESULTS.md" || return
  # shellcheck disable=SC2206  # GPU_CHECK_BENCH_ARGS is a word list on purpose
  local args=($GPU_CHECK_BENCH_ARGS)
  local vars=("${BUILD_VARS[@]}" BENCH_DEVICE=cuda BENCH_SHORT=1 BENCH_DIR="$out" BENCH_RESULTS="$out/RESULTS.md"
              BENCH_PLOT="$out/scaling.png" PYTEST_ARGS="${args[*]}")
  if dry; then
    echo "dry run: the commands of: make bench ${vars[*]}"
    "${SUBMAKE[@]}" -n bench "${vars[@]}" || return
    BENCH_SHORT=1 BENCH_DEVICE=cpu "${PYTEST[@]}" benchmarks --collect-only -q "${args[@]}"
  else
    "${SUBMAKE[@]}" bench "${vars[@]}"
  fi
}

run_step() {
  cd "$ROOT" || return
  case "$1" in
    info) step_info ;;
    build) step_build ;;
    test-cuda) step_test_cuda ;;
    memcheck | racecheck | synccheck) step_sanitizer "$1" ;;
    bench) step_bench ;;
    *) echo "unknown step $1" >&2; return 2 ;;
  esac
}

# ---- the driver ----------------------------------------------------------------------------------
usage() { sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; }

OUT_ARG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --step) shift; run_step "$1"; exit ;;
    --dry-run) export GPU_CHECK_DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
    *) OUT_ARG=$1 ;;
  esac
  shift
done
if [ -z "$OUT_ARG" ]; then echo "usage: benchmarks/gpu_check.sh DIR [--dry-run]" >&2; exit 2; fi
mkdir -p "$OUT_ARG" || exit 2
GPU_CHECK_OUT=$(cd "$OUT_ARG" && pwd)
export GPU_CHECK_OUT
LOG=$GPU_CHECK_OUT/gpu-check.log
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
: >"$LOG"
rm -f "$GPU_CHECK_OUT/summary.json"

DEADLINE=$((SECONDS + BUDGET))
MODE=$(dry && echo "DRY RUN" || echo "GPU run")
echo "=== [gpu-check] $MODE into $GPU_CHECK_OUT (budget ${BUDGET} s, PYTHON=$PYTHON) ===" | tee -a "$LOG"
declare -a STATUS RCS SECS LIMITS
BUILD_STATUS=""
for i in "${!STEPS[@]}"; do
  name=${STEPS[$i]}
  keep=0
  for ((j = i + 1; j < ${#STEPS[@]}; j++)); do keep=$((keep + KEEP[j])); done
  limit=$((DEADLINE - SECONDS - keep))
  ((limit > CAPS[i])) && limit=${CAPS[$i]}
  LIMITS[$i]=$limit
  if [ "$name" = bench ] && [ "$BUILD_STATUS" != ok ] && ! dry; then
    # `make bench` would only try the failed build again
    STATUS[$i]="skipped"; RCS[$i]=""; SECS[$i]=0
    echo "=== [gpu-check] $name: skipped (the build failed) ===" | tee -a "$LOG"
    continue
  fi
  if ((limit < 5)); then
    STATUS[$i]="skipped"; RCS[$i]=""; SECS[$i]=0
    echo "=== [gpu-check] $name: skipped (no time left in the ${BUDGET} s budget) ===" | tee -a "$LOG"
    continue
  fi
  echo "=== [gpu-check] $name (timeout ${limit} s, $(date -u +%H:%M:%S) UTC) ===" | tee -a "$LOG"
  start=$SECONDS
  timeout -k 10 "$limit" bash "$SELF" --step "$name" </dev/null 2>&1 | tee -a "$LOG" >"$TMPD/$name.log"
  rc=${PIPESTATUS[0]}
  SECS[$i]=$((SECONDS - start)); RCS[$i]=$rc
  if ((rc == 0)); then
    STATUS[$i]=ok
  elif ((rc == 124 || rc == 137)); then
    STATUS[$i]=TIMEOUT
  elif [[ $name == *check ]] && grep -q "Device not supported" "$TMPD/$name.log"; then
    STATUS[$i]=unsupported
  else
    STATUS[$i]=FAIL
  fi
  [ "$name" = build ] && BUILD_STATUS=${STATUS[$i]}
  echo "=== [gpu-check] $name: ${STATUS[$i]} (exit $rc, ${SECS[$i]} s) ===" | tee -a "$LOG"
  if [ "${STATUS[$i]}" != ok ]; then tail -n 15 "$TMPD/$name.log" | sed 's/^/    | /'; fi
done

# ---- summary: table on stdout and in the log, summary.json ----------------------------------------
failed=0
for i in "${!STEPS[@]}"; do
  case "${STATUS[$i]}" in ok | unsupported) ;; skipped) dry || failed=$((failed + 1)) ;; *) failed=$((failed + 1)) ;; esac
  printf '%s\t%s\t%s\t%s\t%s\n' "${STEPS[$i]}" "${STATUS[$i]}" "${RCS[$i]}" "${SECS[$i]}" "${LIMITS[$i]}"
done >"$TMPD/results.tsv"
{
  echo
  echo "=== [gpu-check] summary ($MODE, ${SECONDS} s of ${BUDGET} s) ==="
  printf '  %-12s %-12s %5s %8s %8s\n' step status exit seconds timeout
  while IFS=$'\t' read -r n s r t l; do printf '  %-12s %-12s %5s %8s %8s\n' "$n" "$s" "$r" "$t" "$l"; done <"$TMPD/results.tsv"
  grep -h "peak extra CUDA memory" "$TMPD/test-cuda.log" 2>/dev/null | head -n 1 | sed 's/^/  /'
  if ! dry && [ -f "$GPU_CHECK_OUT/RESULTS.md" ]; then  # the GPU section's targets table
    sed -n '/^## CUDA: /,/^### dse/p' "$GPU_CHECK_OUT/RESULTS.md" | grep -E '^(## |\| )' | sed 's/^/  /'
  fi
  if ((failed)); then echo "=== [gpu-check] FAILED: $failed step(s); see $LOG ==="
  else echo "=== [gpu-check] PASSED ==="; fi
} | tee -a "$LOG"

for py in "$PYTHON" python3; do
  "$py" - "$TMPD" "$GPU_CHECK_OUT" "$GPU_CHECK_DRY_RUN" "$BUDGET" "$SECONDS" "$failed" <<'EOF' && break
import json, os, sys
tmp, out, dry, budget, seconds, failed = sys.argv[1:]
steps = []
with open(os.path.join(tmp, "results.tsv")) as f:
    for line in f:
        name, status, rc, secs, limit = line.rstrip("\n").split("\t")
        path = os.path.join(tmp, name + ".log")
        tail = open(path, errors="replace").read().splitlines()[-25:] if os.path.exists(path) else []
        steps.append({"name": name, "status": status, "exit": int(rc) if rc else None, "seconds": int(secs),
                      "timeout_s": int(limit), "tail": tail})
summary = {"dry_run": dry == "1", "passed": failed == "0", "budget_s": int(budget), "seconds": int(seconds),
           "log": "gpu-check.log", "steps": steps}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
EOF
done
((failed == 0))
