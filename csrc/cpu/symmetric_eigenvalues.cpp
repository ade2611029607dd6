#include "symmetric_eigenvalues.h"

#include <c10/util/Exception.h>  // TORCH_CHECK

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "aligned_vector.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // wide vector types by value, inlined only

namespace sdd {
namespace cpu {
namespace {

// Sweeps of the QR iteration whose rotations wait in a buffer before they are applied to the
// eigenvectors together: Z^T (m^2 W doubles per group, megabytes) then goes through the cache once
// per this many sweeps instead of once per sweep.
constexpr int kBufferedSweeps = 8;

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
#include "tridiagonalize_rows.inc"
}  // namespace avx512
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
namespace avx2 {
constexpr int W = 4;
#include "symmetric_eigenvalues_lanes.inc"
#include "tridiagonalize_rows.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif
namespace generic {
constexpr int W = 2;
#include "symmetric_eigenvalues_lanes.inc"
#include "tridiagonalize_rows.inc"
}  // namespace generic

constexpr int kMaxLanes = 8;

// One instruction set's kernel (symmetric_eigenvalues_lanes.inc).
struct Kernel {
  int lanes;         // W
  int value_groups;  // kValueGroups: groups per QR for eigenvalues only (a quad); d, e rows hold as many
  void (*lane_gram)(const double* x, int64_t n, int64_t rows, int64_t d, double* a, int lane);
  void (*scale_group)(double* a, int64_t elements, double* scale, bool* failed);
  void (*reduce_group)(double* a, int64_t m, int g, double* d, double* e, double* scratch, double* house);
  void (*solve_pair)(double* d, double* e, int64_t m, bool* failed, double* zt, double* rotations, int vector_groups,
                     const double* known, double* taken);
  void (*solve_values)(double* d, double* e, int64_t m, bool* failed, int groups);
  void (*back_transform)(const double* house, int64_t m, double* zt);
  int64_t (*eigenvector_row)(int64_t m);  // doubles between rows of a group's Z^T block
  // One matrix at a time (tridiagonalize_rows.inc): packed triangles of doubles.
  void (*row_gram)(const double* x, int64_t n, int64_t rows, int64_t d, double* a);
  double (*scale_matrix)(double* a, int64_t elements, bool* failed);
  void (*tridiagonalize_rows)(double* a, int64_t m, double* d, double* e, double* scratch);
};

#define SDD_KERNEL(ns) \
  Kernel {                                                                                                  \
    ns::W, ns::kValueGroups, ns::lane_gram, ns::scale_group, ns::reduce_group, ns::solve_pair,              \
        ns::solve_values, ns::back_transform, ns::eigenvector_row, ns::row_gram, ns::scale_matrix,          \
        ns::tridiagonalize_rows                                                                             \
  }

// The widest kernel the CPU runs, or a narrower one if SDD_CPU_LANES (2, 4) asks for it: tests run
// every copy that way on one machine.
const Kernel& kernel() {
  static const Kernel picked = [] {
    const char* cap = std::getenv("SDD_CPU_LANES");
    const int most = cap != nullptr ? std::atoi(cap) : kMaxLanes;
#ifdef SDD_X86_LEVELS
    __builtin_cpu_init();
    if (most >= 8 && __builtin_cpu_supports("x86-64-v4")) return SDD_KERNEL(avx512);
    if (most >= 4 && __builtin_cpu_supports("x86-64-v3")) return SDD_KERNEL(avx2);
#endif
    return SDD_KERNEL(generic);
  }();
  return picked;
}

#undef SDD_KERNEL

constexpr int kGroupsPerPair = 2;  // the kernels' kGroups: groups per QR with eigenvectors
constexpr int kMaxValueGroups = 4;

// fill(first, used, m, a): packed lower triangles [m (m + 1) / 2, W] of matrices first .. first +
// used - 1 (used <= W) into `a`, the other lanes zero; m: the group's size (its largest member's).
using GroupFill = std::function<void(int64_t first, int64_t used, int64_t m, double* a)>;

// fill_one(j, size, a): matrix j's packed lower triangle [size (size + 1) / 2] of doubles alone, size
// its rows rounded up to a multiple of 4 (the groups reduced one matrix at a time; see ragged_group).
using MatrixFill = std::function<void(int64_t j, int64_t size, double* a)>;

// A group whose members' sizes differ widely is reduced one matrix at a time (tridiagonalize_rows.inc)
// instead of in lanes at its largest member's size: when the lanes' work, W size^3, is over
// kRaggedWork times the members' own (the one-matrix reduction runs at ~3/4 of the lanes' flop rate,
// measured at sizes 170-300 under AVX-512; it also keeps one triangle in cache instead of W), and
// the size is at least kRowsFrom (shorter rows leave its vectors mostly in their tails).
constexpr double kRaggedWork = 1.5;
constexpr int64_t kRowsFrom = 96;

// Where solve_by_pairs puts its results: eigenvalues only, values [count, m] (ascending); or, with
// `outputs`, per matrix j its eigenvectors [n_j, n_j] (row-major, column c that of eigenvalue c)
// then its n_j eigenvalues (ascending) at outputs[j], n_j = sizes[j] (m when sizes is null): the
// leading n_j x n_j block, the matrix being zero outside it. For eigenvalues only, sizes (when
// given) let each group be reduced at its own size, its largest n_j rounded up to a multiple of 4:
// the zero block beyond it decouples exactly, and its values come out as zeros.
struct Results {
  double* values = nullptr;
  const int64_t* sizes = nullptr;
  double* const* outputs = nullptr;
};

// The eigen-decompositions of `count` matrices that `fill` packs, a pair of groups at a time (a
// quad for eigenvalues only): each lane scaled by a power of two (its largest entry into [0.5, 1):
// no overflow or underflow in the squares, and scaling back is exact), reduced to tridiagonal form;
// then their QR, with the rotations and reflectors applied to an identity when eigenvectors are
// asked for. A lane with a non-finite entry gets NaN. The eigenvalues are the same bits with or
// without eigenvectors.
void solve_by_pairs(int64_t count, int64_t m, const GroupFill& fill, const Results& results,
                    const MatrixFill& fill_one = nullptr) {
  const Kernel& k = kernel();
  const bool vectors = results.outputs != nullptr;
  // Matrices per QR (a pair of groups with eigenvectors, a quad without); d, e rows hold a quad.
  const int W = k.lanes, pair = kGroupsPerPair * W, solved = (vectors ? kGroupsPerPair : k.value_groups) * W;
  const int stride = k.value_groups * W;
  const int64_t elements = m * (m + 1) / 2, triangle = elements * W;
  const int64_t square = vectors ? m * k.eigenvector_row(m) : 0, reflectors = vectors ? triangle : 0;
  // Kept for the thread's life (no allocation per call); every part below starts at a multiple of
  // W doubles, so with the cache-line-aligned start each Lanes access stays in one cache line.
  thread_local AlignedVector<double> work;
  const int64_t doubles = triangle + 2 * m * stride + 4 * m * W + kGroupsPerPair * (square + reflectors) +
                          (vectors ? kBufferedSweeps * m * 2 * pair + 2 * m * stride + 2 * m * pair : 0);
  if (static_cast<int64_t>(work.size()) < doubles) work.resize(doubles);
  double* a = work.data();
  double *d = a + triangle, *e = d + m * stride, *scratch = e + m * stride;
  double* zt = scratch + 4 * m * W;  // [kGroupsPerPair][m] rows of m Lanes, eigenvector_row(m) apart
  double* house = zt + kGroupsPerPair * square;   // [kGroupsPerPair][m (m + 1) / 2] Lanes
  double* rotations = house + kGroupsPerPair * reflectors;  // [kBufferedSweeps][m][kGroupsPerPair][2] Lanes
  // With eigenvectors: the eigenvalues found first, without them: values, e_copy [m][stride] (d, e's
  // layout), then known, taken [pair][m] (solve_pair).
  double* values = rotations + (vectors ? kBufferedSweeps * m * 2 * pair : 0);
  double *e_copy = values + m * stride, *known = e_copy + m * stride, *taken = known + m * pair;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::pair<double, int64_t>> order;
  std::vector<double> sorted_values;
  // Size of the group of `members` matrices from `first`: m, or without eigenvectors its largest
  // matrix's (the reflectors and rotations of eigenvectors are laid out for m).
  auto own_size = [&](int64_t j) { return std::min(gram_rows(results.sizes[j]), m); };
  auto group_size = [&](int64_t from, int64_t members) {
    if (vectors || results.sizes == nullptr) return m;
    int64_t size = 1;
    for (int64_t j = from; j < from + members; ++j) size = std::max(size, own_size(j));
    return size;
  };
  // For eigenvalues only, with sizes and a fill_one: whether the group of `members` from `from`, of
  // size `size`, is reduced one matrix at a time.
  auto ragged_group = [&](int64_t from, int64_t members, int64_t size) {
    if (vectors || results.sizes == nullptr || !fill_one || size < kRowsFrom) return false;
    double own = 0.0;
    for (int64_t j = from; j < from + members; ++j) own += std::pow(static_cast<double>(own_size(j)), 3);
    return W * std::pow(static_cast<double>(size), 3) > kRaggedWork * own;
  };
  // Rows `from` .. m - 1 of group g's lanes of d and e <- 0 (an empty group, or beyond its size).
  auto zero_rows = [&](int g, int64_t from) {
    for (int64_t i = from; i < m; ++i) {
      std::fill(d + i * stride + g * W, d + i * stride + (g + 1) * W, 0.0);
      std::fill(e + i * stride + g * W, e + i * stride + (g + 1) * W, 0.0);
    }
  };
  // Group g's `members` matrices from `from`, one at a time, each into its lane of d, e
  // (the empty lanes zero); scale, failed: the group's W entries.
  auto reduce_one_by_one = [&](int64_t from, int64_t members, int g, double* scale, bool* failed) {
    for (int l = 0; l < W; ++l) {
      const int64_t own = l < members ? own_size(from + l) : 0;
      double* one_d = a + own * (own + 1) / 2;  // after the member's triangle: its d, e [own]
      double* one_e = one_d + own;
      scale[l] = 1.0;
      failed[l] = false;
      if (own > 0) {
        fill_one(from + l, own, a);
        scale[l] = k.scale_matrix(a, own * (own + 1) / 2, failed + l);
        k.tridiagonalize_rows(a, own, one_d, one_e, scratch);
      }
      for (int64_t i = 0; i < m; ++i) {
        d[i * stride + g * W + l] = i < own ? one_d[i] : 0.0;
        e[i * stride + g * W + l] = i < own ? one_e[i] : 0.0;
      }
    }
  };
  for (int64_t first = 0; first < count; first += solved) {
    const int64_t used = std::min<int64_t>(solved, count - first);
    double scale[kMaxValueGroups * kMaxLanes];
    bool failed[kMaxValueGroups * kMaxLanes];
    const int groups = static_cast<int>((used + W - 1) / W);  // with a matrix: the others stay zero
    for (int g = groups; g < solved / W; ++g) {
      zero_rows(g, 0);
      std::fill(scale + g * W, scale + (g + 1) * W, 1.0);
      std::fill(failed + g * W, failed + (g + 1) * W, false);
    }
    for (int g = 0; g < groups; ++g) {
      const int64_t members = std::clamp<int64_t>(used - g * W, 0, W);
      const int64_t size = group_size(first + g * W, members);
      if (ragged_group(first + g * W, members, size)) {
        reduce_one_by_one(first + g * W, members, g, scale + g * W, failed + g * W);
        continue;
      }
      fill(first + g * W, members, size, a);
      k.scale_group(a, size * (size + 1) / 2, scale + g * W, failed + g * W);
      k.reduce_group(a, size, g, d, e, scratch, vectors ? house + g * reflectors : nullptr);
      zero_rows(g, size);  // the zero block of a group reduced at its own size
      // A matrix that is zero outside its leading n x n block (the caller's promise) has a tridiagonal
      // form zero outside it too, exactly: the block decouples, and rows < n of Z^T end as its
      // eigenvectors, with zero components beyond n.
      for (int l = 0; vectors && results.sizes != nullptr && l < W && g * W + l < used; ++l) {
        const int64_t n = results.sizes[first + g * W + l];
        TORCH_CHECK(n >= 1 && n <= m, "symmetric eigensolver: size ", n, " of matrix ", first + g * W + l,
                    " is not in [1, ", m, "]");
        bool zero = true;
        for (int64_t r = n; r < m && !failed[g * W + l]; ++r) {
          zero = zero && d[r * stride + g * W + l] == 0.0 && e[(r - 1) * stride + g * W + l] == 0.0;
        }
        TORCH_CHECK(zero, "symmetric eigensolver: matrix ", first + g * W + l, " is not zero outside its leading ",
                    n, " x ", n, " block");
      }
    }
    if (vectors) {
      std::fill(zt, zt + groups * square, 0.0);
      for (int g = 0; g < groups; ++g) {
        for (int64_t i = 0; i < m; ++i) {
          for (int l = 0; l < W; ++l) zt[g * square + i * k.eigenvector_row(m) + i * W + l] = 1.0;
        }
      }
    }
    if (vectors) {
      // The eigenvalues first (the same bits as without eigenvectors), then the QR with rotations
      // shifted by them: far fewer sweeps, hence rotations (tridiagonal_qr).
      std::copy(d, d + m * stride, values);
      std::copy(e, e + m * stride, e_copy);
      k.solve_values(values, e_copy, m, failed, kGroupsPerPair);
      for (int l = 0; l < pair; ++l) {
        for (int64_t i = 0; i < m; ++i) known[l * m + i] = values[i * stride + l];
        std::sort(known + l * m, known + (l + 1) * m);
      }
    }
    if (!vectors) {
      k.solve_values(d, e, m, failed, k.value_groups);
      for (int64_t lane = 0; lane < used; ++lane) {
        double* out = results.values + (first + lane) * m;
        for (int64_t i = 0; i < m; ++i) out[i] = failed[lane] ? nan : d[i * stride + lane] / scale[lane];
        std::sort(out, out + m);
      }
      continue;
    }
    k.solve_pair(d, e, m, failed, zt, rotations, groups, known, taken);
    for (int g = 0; g < groups; ++g) k.back_transform(house + g * reflectors, m, zt + g * square);
    for (int64_t lane = 0; lane < used; ++lane) {
      const int64_t j = first + lane, n = results.sizes != nullptr ? results.sizes[j] : m;
      const int g = static_cast<int>(lane / W), l = static_cast<int>(lane % W);
      const double* z = zt + g * square + l;  // element (row r, component i) at r row + i W
      double* out = results.outputs[j];
      // Positions < n hold the leading block's eigenvalues in both solves (it decouples exactly):
      // the eigenvectors in the order of their QR's values, the eigenvalues those found without them.
      order.resize(n);
      for (int64_t r = 0; r < n; ++r) order[r] = {d[r * stride + lane], r};
      std::sort(order.begin(), order.end());
      sorted_values.resize(n);
      for (int64_t r = 0; r < n; ++r) sorted_values[r] = values[r * stride + lane];
      std::sort(sorted_values.begin(), sorted_values.end());
      for (int64_t c = 0; c < n; ++c) {
        const double* vector = z + order[c].second * k.eigenvector_row(m);
        for (int64_t i = 0; i < n; ++i) out[i * n + c] = failed[lane] ? nan : vector[i * W];
        out[n * n + c] = failed[lane] ? nan : sorted_values[c] / scale[lane];
      }
    }
  }
}

// GroupFill packing the lower triangles of matrices [count, m, m] (row-major).
GroupFill pack_matrices(const double* matrices, int64_t m) {
  return [matrices, m](int64_t first, int64_t used, int64_t size, double* a) {
    TORCH_CHECK(size == m, "symmetric eigensolver: a group of size ", size, " for matrices of size ", m);
    const int W = kernel().lanes;
    // Element (i, j) of lane l at (i (i + 1) / 2 + j) W + l.
    for (int64_t i = 0, at = 0; i < m; ++i) {
      for (int64_t j = 0; j <= i; ++j, at += W) {
        for (int l = 0; l < W; ++l) a[at + l] = l < used ? matrices[(first + l) * m * m + i * m + j] : 0.0;
      }
    }
  };
}

// The calling thread's buffer for one matrix's rows, at least `doubles` long (kept between calls;
// one matrix at a time: it stays in cache for its Gram).
double* rows_buffer(int64_t doubles) {
  thread_local AlignedVector<double> buffer;
  if (static_cast<int64_t>(buffer.size()) < doubles) buffer.resize(doubles);
  return buffer.data();
}

// Nonzero rows of matrix j of a Gram solve whose group has `size` rows: sizes[j] (all `size` when
// sizes is null), at most size.
int64_t nonzero_rows(const int64_t* sizes, int64_t j, int64_t size) {
  return sizes != nullptr ? std::min(sizes[j], size) : size;
}

// GroupFill forming the Grams X X^T of the `source`'s matrices [rows, d] in the solver's layout,
// matrix j over its first sizes[j] rows rounded up to a multiple of 4 (all `rows` when sizes is
// null; the rows beyond sizes[j] must be zero), its lane zero beyond them.
GroupFill pack_grams(const GramSource& source, int64_t rows, int64_t d, const int64_t* sizes) {
  TORCH_CHECK(rows % kGramRowMultiple == 0, "gram eigensolver: rows must be a multiple of 4, got ", rows);
  return [&source, rows, d, sizes](int64_t first, int64_t used, int64_t size, double* a) {
    const Kernel& k = kernel();
    double* buffer = rows_buffer(rows * d);
    for (int l = 0; l < k.lanes; ++l) {
      int64_t own = 0;  // rows of lane l's Gram; the triangle's layout is the same for every size
      if (l < used) {
        const int64_t n = nonzero_rows(sizes, first + l, size);
        own = std::min(gram_rows(n), size);
        k.lane_gram(source(first + l, buffer), n, own, d, a, l);
      }
      for (int64_t at = own * (own + 1) / 2 * k.lanes + l; at < size * (size + 1) / 2 * k.lanes; at += k.lanes) {
        a[at] = 0.0;
      }
    }
  };
}

// MatrixFill forming one matrix's Gram over its first `size` rows of the `source`'s [rows, d] (the
// rows beyond its own, sizes[j], must be zero).
MatrixFill pack_one_gram(const GramSource& source, int64_t rows, int64_t d, const int64_t* sizes) {
  return [&source, rows, d, sizes](int64_t j, int64_t size, double* a) {
    kernel().row_gram(source(j, rows_buffer(rows * d)), nonzero_rows(sizes, j, size), size, d, a);
  };
}

// The matrices [count, rows, d] of an array, as a GramSource (no copy).
GramSource stacked_source(const double* matrices, int64_t rows, int64_t d) {
  return [matrices, rows, d](int64_t j, double*) { return matrices + j * rows * d; };
}

}  // namespace

void symmetric_eigenvalues(const double* matrices, int64_t count, int64_t m, double* values) {
  if (count <= 0 || m <= 0) return;
  solve_by_pairs(count, m, pack_matrices(matrices, m), Results{values});
}

void symmetric_eigh(const double* matrices, int64_t count, int64_t m, const int64_t* sizes, double* const* outputs) {
  if (count <= 0 || m <= 0) return;
  solve_by_pairs(count, m, pack_matrices(matrices, m), Results{nullptr, sizes, outputs});
}

int eigensolver_lanes() { return kernel().lanes; }
int eigenvalue_matrices_per_solve() { return kernel().value_groups * kernel().lanes; }

void gram_eigenvalues(const GramSource& source, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
                      double* values) {
  if (count <= 0 || rows <= 0) return;
  solve_by_pairs(count, rows, pack_grams(source, rows, d, sizes), Results{values, sizes},
                 pack_one_gram(source, rows, d, sizes));
}

void gram_eigh(const GramSource& source, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
               double* const* outputs) {
  if (count <= 0 || rows <= 0) return;
  solve_by_pairs(count, rows, pack_grams(source, rows, d, sizes), Results{nullptr, sizes, outputs});
}

void gram_eigenvalues(const double* matrices, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
                      double* values) {
  gram_eigenvalues(stacked_source(matrices, rows, d), count, rows, d, sizes, values);
}

void gram_eigh(const double* matrices, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
               double* const* outputs) {
  gram_eigh(stacked_source(matrices, rows, d), count, rows, d, sizes, outputs);
}

}  // namespace cpu
}  // namespace sdd
