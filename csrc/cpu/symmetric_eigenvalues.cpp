#include "symmetric_eigenvalues.h"

#include <c10/util/Exception.h>  // TORCH_CHECK

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#pragma GCC diagnostic ignored "-Wpsabi"  // wide vector types by value, inlined only

namespace sdd {
namespace cpu {
namespace {

// A group is W matrices, one per lane of a native vector: 8 under AVX-512, 4 under AVX2, 2
// otherwise (vectors wider than the target's, or defined outside its target region, get their
// compares and selects scalarised by GCC). One copy of the kernel per instruction set:
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SDD_X86_LEVELS 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
namespace avx512 {
constexpr int W = 8;
#include "symmetric_eigenvalues_lanes.inc"
}  // namespace avx512
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
namespace avx2 {
constexpr int W = 4;
#include "symmetric_eigenvalues_lanes.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif
namespace generic {
constexpr int W = 2;
#include "symmetric_eigenvalues_lanes.inc"
}  // namespace generic

constexpr int kMaxLanes = 8;

// One instruction set's kernel (symmetric_eigenvalues_lanes.inc).
struct Kernel {
  int lanes;  // W
  void (*lane_gram)(const double* x, int64_t rows, int64_t d, double* a, int lane);
  void (*reduce_group)(double* a, int64_t m, int g, double* d, double* e, double* scratch);
  void (*solve_pair)(double* d, double* e, int64_t m, bool* failed);
};

// The widest kernel the CPU runs, or a narrower one if SDD_CPU_LANES (2, 4) asks for it: tests run
// every copy that way on one machine.
const Kernel& kernel() {
  static const Kernel picked = [] {
    const char* cap = std::getenv("SDD_CPU_LANES");
    const int most = cap != nullptr ? std::atoi(cap) : kMaxLanes;
#ifdef SDD_X86_LEVELS
    __builtin_cpu_init();
    if (most >= 8 && __builtin_cpu_supports("x86-64-v4")) {
      return Kernel{avx512::W, avx512::lane_gram, avx512::reduce_group, avx512::solve_pair};
    }
    if (most >= 4 && __builtin_cpu_supports("x86-64-v3")) {
      return Kernel{avx2::W, avx2::lane_gram, avx2::reduce_group, avx2::solve_pair};
    }
#endif
    return Kernel{generic::W, generic::lane_gram, generic::reduce_group, generic::solve_pair};
  }();
  return picked;
}

constexpr int kGroupsPerPair = 2;  // the kernels' kGroups

// fill(first, used, a): packed lower triangles [m (m + 1) / 2, W] of matrices first .. first + used
// - 1 (used <= W) into `a`, the other lanes zero.
using GroupFill = std::function<void(int64_t first, int64_t used, double* a)>;

// values [count, m] <- the eigenvalues (ascending) of `count` matrices that `fill` packs, a pair of
// groups at a time: each lane scaled by a power of two (its largest entry into [0.5, 1): no
// overflow or underflow in the squares, and scaling back is exact), reduced to tridiagonal form;
// then the pair's QR. A lane with a non-finite entry gets NaN.
void eigenvalues_by_pairs(int64_t count, int64_t m, const GroupFill& fill, double* values) {
  const Kernel& k = kernel();
  const int W = k.lanes, pair = kGroupsPerPair * W;
  const int64_t elements = m * (m + 1) / 2, triangle = elements * W;
  thread_local std::vector<double> work;  // kept for the thread's life: no allocation per call
  const int64_t doubles = triangle + 2 * m * pair + 4 * m * W;
  if (static_cast<int64_t>(work.size()) < doubles) work.resize(doubles);
  double* a = work.data();
  double *d = a + triangle, *e = d + m * pair, *scratch = e + m * pair;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t first = 0; first < count; first += pair) {
    const int64_t used = std::min<int64_t>(pair, count - first);
    double scale[kGroupsPerPair * kMaxLanes];
    bool failed[kGroupsPerPair * kMaxLanes];
    for (int g = 0; g < kGroupsPerPair; ++g) {
      fill(first + g * W, std::clamp<int64_t>(used - g * W, 0, W), a);
      double largest[kMaxLanes] = {};
      bool finite[kMaxLanes];
      std::fill(finite, finite + W, true);
      for (int64_t at = 0; at < triangle; at += W) {
        for (int l = 0; l < W; ++l) {
          finite[l] = finite[l] && std::isfinite(a[at + l]);
          largest[l] = std::max(largest[l], std::abs(a[at + l]));
        }
      }
      double factor[kMaxLanes];
      for (int l = 0; l < W; ++l) {
        int exponent = 0;
        if (finite[l] && largest[l] > 0.0) std::frexp(largest[l], &exponent);
        factor[l] = finite[l] ? std::ldexp(1.0, -std::clamp(exponent, -1020, 1020)) : 0.0;
        scale[g * W + l] = factor[l] != 0.0 ? factor[l] : 1.0;
        failed[g * W + l] = !finite[l];
      }
      for (int64_t at = 0; at < triangle; at += W) {
        for (int l = 0; l < W; ++l) a[at + l] = factor[l] != 0.0 ? a[at + l] * factor[l] : 0.0;
      }
      k.reduce_group(a, m, g, d, e, scratch);
    }
    k.solve_pair(d, e, m, failed);
    for (int64_t lane = 0; lane < used; ++lane) {
      double* out = values + (first + lane) * m;
      for (int64_t i = 0; i < m; ++i) out[i] = failed[lane] ? nan : d[i * pair + lane] / scale[lane];
      std::sort(out, out + m);
    }
  }
}

}  // namespace

void symmetric_eigenvalues(const double* matrices, int64_t count, int64_t m, double* values) {
  if (count <= 0 || m <= 0) return;
  const int W = kernel().lanes;
  eigenvalues_by_pairs(count, m, [&](int64_t first, int64_t used, double* a) {
    // Element (i, j) of lane l at (i (i + 1) / 2 + j) W + l.
    for (int64_t i = 0, at = 0; i < m; ++i) {
      for (int64_t j = 0; j <= i; ++j, at += W) {
        for (int l = 0; l < W; ++l) a[at + l] = l < used ? matrices[(first + l) * m * m + i * m + j] : 0.0;
      }
    }
  }, values);
}

int eigensolver_lanes() { return kernel().lanes; }

void gram_eigenvalues(const double* matrices, int64_t count, int64_t rows, int64_t d, double* values) {
  if (count <= 0 || rows <= 0) return;
  TORCH_CHECK(rows % 4 == 0, "gram_eigenvalues: rows must be a multiple of 4, got ", rows);
  const Kernel& k = kernel();
  eigenvalues_by_pairs(count, rows, [&](int64_t first, int64_t used, double* a) {
    for (int l = 0; l < k.lanes; ++l) {
      if (l < used) {
        k.lane_gram(matrices + (first + l) * rows * d, rows, d, a, l);
      } else {
        for (int64_t at = l; at < rows * (rows + 1) / 2 * k.lanes; at += k.lanes) a[at] = 0.0;
      }
    }
  }, values);
}

}  // namespace cpu
}  // namespace sdd
