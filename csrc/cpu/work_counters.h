// Work the CPU kernels did, for the benchmarks' roofline (flops counted from what actually ran) and
// for tests of the bound-based k-means. Relaxed atomics, bumped once per problem: no cost in the
// hot loops. Read and reset through sdd_fast._C.work_counters().
#pragma once

#include <atomic>
#include <cstdint>

namespace sdd {
namespace cpu {

struct WorkCounters {
  std::atomic<int64_t> kmeans_runs{0};            // seeding + Lloyd runs (n_init per problem)
  std::atomic<int64_t> lloyd_iterations{0};       // centroid updates over all runs
  std::atomic<int64_t> lloyd_point_iterations{0}; // sum over runs of points x (updates + 1 assignments)
  std::atomic<int64_t> distances_full{0};         // point-centroid distances plain Lloyd evaluates
  std::atomic<int64_t> distances_computed{0};     // ... that the bound-based assignment evaluated
  std::atomic<int64_t> exact_rechecks{0};         // points whose fp32 best and second best were re-ranked in fp64
  std::atomic<int64_t> seeding_full{0};           // point-candidate products the full greedy seeding takes
  std::atomic<int64_t> seeding_computed{0};       // ... that the bound-pruned seeding took
  std::atomic<int64_t> other_distances{0};        // distances the k-means took for the nearest other centroids
};

WorkCounters& work_counters();

// Test switch: true runs plain Lloyd (every distance every iteration) instead of the bound-based
// assignment, and the greedy seeding's full loop (every point-candidate product) instead of the pruned
// one. Both give identical labels and centroids (python_tests/test_kmeans_bounds.py).
std::atomic<bool>& plain_lloyd();

}  // namespace cpu
}  // namespace sdd
