// The Python module sdd_fast._C: loading it registers the ops; it also answers build questions.
#include <ATen/ATen.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>  // at::Tensor <-> torch.Tensor

#include <functional>
#include <optional>
#include <tuple>
#include <vector>

#include "cpu/symmetric_eigenvalues.h"
#include "cpu/work_counters.h"

namespace sdd {
bool has_cuda();
int64_t cuda_version();
bool has_openmp();
}  // namespace sdd

namespace {

// (values [count, m], vectors [count, m, m]), zero-filled, with solve(sizes, outputs) writing matrix
// j's [n, n] vectors and n values (n = sizes[j], m when not given) into a scratch record first.
// The sizes of `count` matrices of m rows: `sizes`, checked (count entries in [1, m]), or all m.
std::vector<int64_t> checked_sizes(int64_t count, int64_t m, const std::optional<std::vector<int64_t>>& sizes) {
  std::vector<int64_t> n = sizes.value_or(std::vector<int64_t>(count, m));
  TORCH_CHECK(static_cast<int64_t>(n.size()) == count, "sizes: expected ", count, " entries, got ", n.size());
  for (const int64_t size : n) TORCH_CHECK(size >= 1 && size <= m, "sizes: every entry must be in [1, ", m, "]");
  return n;
}

std::tuple<at::Tensor, at::Tensor> eigh_outputs(
    int64_t count, int64_t m, const std::optional<std::vector<int64_t>>& sizes,
    const std::function<void(const int64_t*, double* const*)>& solve) {
  const std::vector<int64_t> n = checked_sizes(count, m, sizes);
  at::Tensor records = at::empty({count, m * m + m}, at::kDouble);
  std::vector<double*> outputs(count);
  for (int64_t j = 0; j < count; ++j) outputs[j] = records.data_ptr<double>() + j * (m * m + m);
  solve(n.data(), outputs.data());
  at::Tensor values = at::zeros({count, m}, at::kDouble), vectors = at::zeros({count, m, m}, at::kDouble);
  for (int64_t j = 0; j < count; ++j) {
    const at::Tensor record = records[j];
    vectors[j].narrow(0, 0, n[j]).narrow(1, 0, n[j]).copy_(record.narrow(0, 0, n[j] * n[j]).view({n[j], n[j]}));
    values[j].narrow(0, 0, n[j]).copy_(record.narrow(0, n[j] * n[j], n[j]));
  }
  return {values, vectors};
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "sdd-fast compiled ops (registered in torch.ops.sdd on import)";
  m.def("has_cuda", &sdd::has_cuda, "True when the CUDA kernels were compiled into this build.");
  m.def("cuda_version", &sdd::cuda_version,
        "CUDA runtime version the kernels were built with (e.g. 13000), or -1 without CUDA.");
  m.def("has_openmp", &sdd::has_openmp,
        "True when the CPU kernels were compiled with OpenMP (they then use torch's intra-op threads).");
  m.def(
      "work_counters",
      [](bool reset) {
        sdd::cpu::WorkCounters& w = sdd::cpu::work_counters();
        pybind11::dict out;
        auto read = [&](const char* name, std::atomic<int64_t>& counter) {
          out[name] = reset ? counter.exchange(0) : counter.load();
        };
        read("kmeans_runs", w.kmeans_runs);
        read("lloyd_iterations", w.lloyd_iterations);
        read("lloyd_point_iterations", w.lloyd_point_iterations);
        read("distances_full", w.distances_full);
        read("distances_computed", w.distances_computed);
        read("exact_rechecks", w.exact_rechecks);
        read("seeding_full", w.seeding_full);
        read("seeding_computed", w.seeding_computed);
        read("other_distances", w.other_distances);
        return out;
      },
      pybind11::arg("reset") = false,
      "Work the CPU k-means did since the last reset: seeding + Lloyd runs, centroid updates, point x "
      "assignment passes, point-centroid distances plain Lloyd evaluates and those the bound-based "
      "assignment evaluated, fp64 rechecks of near ties, point-candidate products of the greedy seeding (full loop "
      "and taken after pruning), and distances dse's k-means took to find each point's nearest other centroid. "
      "reset=True zeroes them after reading.");
  m.def(
      "set_plain_lloyd", [](bool plain) { return sdd::cpu::plain_lloyd().exchange(plain); }, pybind11::arg("plain"),
      "Test switch: True makes the CPU k-means evaluate every distance every iteration (plain Lloyd) and "
      "every point-candidate product of its seeding instead of pruning with bounds (same labels and "
      "centroids). Returns the previous setting.");
  m.def("eigensolver_lanes", &sdd::cpu::eigensolver_lanes,
        "Matrices per SIMD group of the CPU eigensolver on this machine: 8 (AVX-512), 4 (AVX2) or 2; "
        "the environment variable SDD_CPU_LANES, read at first use, can ask for fewer.");
  m.def(
      "symmetric_eigenvalues",
      [](const at::Tensor& matrices) {
        TORCH_CHECK(matrices.dim() == 3 && matrices.size(1) == matrices.size(2) && matrices.device().is_cpu() &&
                        matrices.scalar_type() == at::kDouble,
                    "symmetric_eigenvalues: matrices must be a CPU float64 tensor [count, m, m], got ",
                    matrices.sizes(), " ", matrices.scalar_type(), " on ", matrices.device());
        const at::Tensor input = matrices.contiguous();
        at::Tensor values = at::empty({input.size(0), input.size(1)}, input.options());
        sdd::cpu::symmetric_eigenvalues(input.data_ptr<double>(), input.size(0), input.size(1),
                                        values.data_ptr<double>());
        return values;
      },
      pybind11::arg("matrices"),
      "Eigenvalues (ascending) of symmetric matrices [count, m, m] (CPU, float64; lower triangle read) by the "
      "lane-parallel solver the CPU kernels use: [count, m]. For tests.");
  m.def(
      "symmetric_eigh",
      [](const at::Tensor& matrices, std::optional<std::vector<int64_t>> sizes) {
        TORCH_CHECK(matrices.dim() == 3 && matrices.size(1) == matrices.size(2) && matrices.device().is_cpu() &&
                        matrices.scalar_type() == at::kDouble,
                    "symmetric_eigh: matrices must be a CPU float64 tensor [count, m, m], got ", matrices.sizes(),
                    " ", matrices.scalar_type(), " on ", matrices.device());
        const at::Tensor input = matrices.contiguous();
        return eigh_outputs(input.size(0), input.size(1), sizes, [&](const int64_t* n, double* const* outputs) {
          sdd::cpu::symmetric_eigh(input.data_ptr<double>(), input.size(0), input.size(1), n, outputs);
        });
      },
      pybind11::arg("matrices"), pybind11::arg("sizes") = pybind11::none(),
      "(values [count, m], vectors [count, m, m]) of symmetric matrices [count, m, m] (CPU, float64; lower "
      "triangle read) by the lane-parallel solver with eigenvectors: matrix j's leading sizes[j] block (it must "
      "be zero outside it) in values[j, :n] (ascending) and vectors[j, :n, :n] (column c for value c), zeros "
      "elsewhere. For tests.");
  m.def(
      "gram_eigh",
      [](const at::Tensor& matrices, std::optional<std::vector<int64_t>> sizes) {
        TORCH_CHECK(matrices.dim() == 3 && matrices.size(1) % sdd::cpu::kGramRowMultiple == 0 &&
                        matrices.device().is_cpu() && matrices.scalar_type() == at::kDouble,
                    "gram_eigh: matrices must be a CPU float64 tensor [count, rows, d] with rows a multiple of 4, got ",
                    matrices.sizes(), " ", matrices.scalar_type(), " on ", matrices.device());
        const at::Tensor input = matrices.contiguous();
        return eigh_outputs(input.size(0), input.size(1), sizes, [&](const int64_t* n, double* const* outputs) {
          sdd::cpu::gram_eigh(input.data_ptr<double>(), input.size(0), input.size(1), input.size(2), n, outputs);
        });
      },
      pybind11::arg("matrices"), pybind11::arg("sizes") = pybind11::none(),
      "symmetric_eigh for the Grams X X^T of matrices [count, rows, d] (rows % 4 == 0; rows from sizes[j] on "
      "must be zero), formed and solved as the CPU kernels do. For tests.");
  m.def(
      "gram_eigenvalues",
      [](const at::Tensor& matrices, std::optional<std::vector<int64_t>> sizes) {
        TORCH_CHECK(matrices.dim() == 3 && matrices.size(1) % sdd::cpu::kGramRowMultiple == 0 &&
                        matrices.device().is_cpu() && matrices.scalar_type() == at::kDouble,
                    "gram_eigenvalues: matrices must be a CPU float64 tensor [count, rows, d] with rows a multiple "
                    "of 4, got ", matrices.sizes(), " ", matrices.scalar_type(), " on ", matrices.device());
        const at::Tensor input = matrices.contiguous();
        const int64_t count = input.size(0), rows = input.size(1);
        const std::vector<int64_t> n = checked_sizes(count, rows, sizes);
        for (int64_t j = 0; j < count && sizes; ++j) {
          TORCH_CHECK(input[j].narrow(0, n[j], rows - n[j]).count_nonzero().item<int64_t>() == 0,
                      "gram_eigenvalues: rows of matrix ", j, " from sizes[", j, "] = ", n[j], " on must be zero");
        }
        at::Tensor values = at::empty({count, rows}, input.options());
        sdd::cpu::gram_eigenvalues(input.data_ptr<double>(), count, rows, input.size(2), sizes ? n.data() : nullptr,
                                   values.data_ptr<double>());
        return values;
      },
      pybind11::arg("matrices"), pybind11::arg("sizes") = pybind11::none(),
      "Eigenvalues (ascending) of the Grams X X^T of matrices [count, rows, d] (CPU, float64, rows % 4 == 0), "
      "formed and solved as the CPU kernels do: [count, rows]; with sizes, matrix j's rows from sizes[j] on "
      "must be zero, and each group is reduced at its own size. For tests.");
}
