#include "row_gather.h"

#include "clones.h"

namespace sdd {
namespace cpu {
namespace {

// Rows asked for ahead of the one read: the gathered rows lie anywhere in the table (often beyond
// the caches), one row ahead left the copy waiting on memory (forward ~3% slower than three).
constexpr int64_t kAhead = 3;

// Asks for the cache lines of `row` [d].
template <typename scalar_t>
inline __attribute__((always_inline)) void prefetch_row(const scalar_t* row, int64_t d) {
  constexpr int64_t kLine = 64 / sizeof(scalar_t);
  for (int64_t c = 0; c < d; c += kLine) __builtin_prefetch(row + c);
}

// Before row r of a pass over rows `rows` [n] of table: asks for row r + kAhead (at r = 0, for
// rows 1 .. kAhead).
template <typename scalar_t>
inline __attribute__((always_inline)) void fetch_ahead(const scalar_t* table, const int64_t* rows, int64_t r,
                                                       int64_t n, int64_t d) {
  for (int64_t s = r == 0 ? 1 : r + kAhead; s <= r + kAhead && s < n; ++s) prefetch_row(table + rows[s] * d, d);
}

// mean [d] <- the mean of rows `rows` of table (float64, rows in order); `rows` null: rows 0 .. n - 1.
template <typename scalar_t>
inline __attribute__((always_inline)) void mean_row(const scalar_t* table, const int64_t* rows, int64_t n, int64_t d,
                                                    double* mean) {
  for (int64_t c = 0; c < d; ++c) mean[c] = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    if (rows != nullptr) fetch_ahead(table, rows, r, n, d);
    const scalar_t* src = table + (rows != nullptr ? rows[r] : r) * d;
    for (int64_t c = 0; c < d; ++c) mean[c] += static_cast<double>(src[c]);
  }
  for (int64_t c = 0; c < d; ++c) mean[c] /= static_cast<double>(n);
}

// out [n, d] <- rows `rows` of table, minus their float64 mean when centered (then `mean` [d] holds
// it, else zeros): static_cast<out_t>(double(src) - mean), the mean summed row after row. Centered,
// the rows are read twice, for the mean and then for the output, which is written once (the second
// read finds them in cache).
template <typename in_t, typename out_t>
inline __attribute__((always_inline)) void gather(const in_t* table, const int64_t* rows, int64_t n, int64_t d,
                                                  bool centered, double* mean, out_t* out) {
  static_assert(sizeof(out_t) >= sizeof(in_t), "gather: out_t must hold in_t exactly");
  if (centered) {
    mean_row(table, rows, n, d, mean);
  } else {
    for (int64_t c = 0; c < d; ++c) mean[c] = 0.0;
  }
  for (int64_t r = 0; r < n; ++r) {
    if (!centered) fetch_ahead(table, rows, r, n, d);
    const in_t* src = table + rows[r] * d;
    out_t* dst = out + r * d;
    for (int64_t c = 0; c < d; ++c) dst[c] = static_cast<out_t>(static_cast<double>(src[c]) - mean[c]);
  }
}

template <typename scalar_t>
inline __attribute__((always_inline)) void scatter(scalar_t* grad, const int64_t* rows, int64_t n, int64_t d,
                                                   bool centered, double* mean, scalar_t* table) {
  if (centered) {
    mean_row(grad, nullptr, n, d, mean);
    for (int64_t r = 0; r < n; ++r) {
      scalar_t* g = grad + r * d;
      for (int64_t c = 0; c < d; ++c) g[c] = static_cast<scalar_t>(g[c] - mean[c]);
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    fetch_ahead(table, rows, r, n, d);
    scalar_t* dst = table + rows[r] * d;
    const scalar_t* g = grad + r * d;
    for (int64_t c = 0; c < d; ++c) dst[c] += g[c];
  }
}

}  // namespace

SDD_CLONES void gather_rows(const float* table, const int64_t* rows, int64_t n, int64_t d, bool centered,
                            double* mean, double* out) {
  gather(table, rows, n, d, centered, mean, out);
}
SDD_CLONES void gather_rows(const double* table, const int64_t* rows, int64_t n, int64_t d, bool centered,
                            double* mean, double* out) {
  gather(table, rows, n, d, centered, mean, out);
}
SDD_CLONES void gather_rows(const float* table, const int64_t* rows, int64_t n, int64_t d, bool centered,
                            double* mean, float* out) {
  gather(table, rows, n, d, centered, mean, out);
}

SDD_CLONES void scatter_rows(float* grad, const int64_t* rows, int64_t n, int64_t d, bool centered, double* mean,
                             float* table) {
  scatter(grad, rows, n, d, centered, mean, table);
}
SDD_CLONES void scatter_rows(double* grad, const int64_t* rows, int64_t n, int64_t d, bool centered, double* mean,
                             double* table) {
  scatter(grad, rows, n, d, centered, mean, table);
}

}  // namespace cpu
}  // namespace sdd
