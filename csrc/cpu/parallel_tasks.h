// One parallel region that hands out tasks one at a time.
//
// at::parallel_for splits a range into fixed per-thread shares: when another process keeps one
// core busy, the thread on that core holds its whole share and every region waits for it (a
// call made of hundreds of regions then took 4-10x its idle time). Here each thread takes the
// next task from an atomic counter, so a thread the OS does not run holds up at most one task,
// and a call opens a handful of regions. Results must not depend on which thread ran a task:
// tasks write disjoint outputs, and reductions combine per-task partials in task order.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace sdd {
namespace cpu {

// fn(task) for every task in [0, count), on torch's intra-op threads (inline when called inside
// a parallel region or with one thread). Any BLAS / LAPACK call inside fn runs single-threaded.
template <typename Fn>
void parallel_tasks(int64_t count, const Fn& fn) {
  if (count <= 0) return;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), count);
  if (threads <= 1 || at::in_parallel_region()) {
    for (int64_t task = 0; task < count; ++task) fn(task);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t task = next.fetch_add(1); task < count; task = next.fetch_add(1)) fn(task);
  });
}

// Splits [0, total) into `chunks` contiguous ranges of near-equal size (a fixed split: the same
// chunks, hence the same rounding of per-chunk partial sums, whatever the thread count).
inline void chunk_range(int64_t total, int64_t chunks, int64_t chunk, int64_t& begin, int64_t& end) {
  begin = total * chunk / chunks;
  end = total * (chunk + 1) / chunks;
}

}  // namespace cpu
}  // namespace sdd
