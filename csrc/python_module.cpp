// The Python module sdd_fast._C: loading it registers the ops; it also answers build questions.
#include <pybind11/pybind11.h>

#include "cpu/work_counters.h"

namespace sdd {
bool has_cuda();
int64_t cuda_version();
bool has_openmp();
}  // namespace sdd

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
        return out;
      },
      pybind11::arg("reset") = false,
      "Work the CPU k-means did since the last reset: seeding + Lloyd runs, centroid updates, point x "
      "assignment passes, point-centroid distances plain Lloyd evaluates and those the bound-based "
      "assignment evaluated, fp64 rechecks of near ties. reset=True zeroes them after reading.");
  m.def(
      "set_plain_lloyd", [](bool plain) { return sdd::cpu::plain_lloyd().exchange(plain); }, pybind11::arg("plain"),
      "Test switch: True makes the CPU k-means evaluate every distance every iteration (plain Lloyd) instead "
      "of pruning with bounds (same labels and centroids). Returns the previous setting.");
}
