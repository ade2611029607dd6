#include "row_gather.h"

#include "clones.h"

namespace sdd {
namespace cpu {
namespace {

// mean [d] <- the mean of rows `rows` of table (float64, rows in order); `rows` null: rows 0 .. n - 1.
template <typename scalar_t>
inline __attribute__((always_inline)) void mean_row(const scalar_t* table, const int64_t* rows, int64_t n, int64_t d,
                                                    double* mean) {
  for (int64_t c = 0; c < d; ++c) mean[c] = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const scalar_t* src = table + (rows != nullptr ? rows[r] : r) * d;
    for (int64_t c = 0; c < d; ++c) mean[c] += static_cast<double>(src[c]);
  }
  for (int64_t c = 0; c < d; ++c) mean[c] /= static_cast<double>(n);
}

template <typename in_t, typename out_t>
inline __attribute__((always_inline)) void gather(const in_t* table, const int64_t* rows, int64_t n, int64_t d,
                                                  bool centered, double* mean, out_t* out) {
  if (centered) {
    mean_row(table, rows, n, d, mean);
  } else {
    for (int64_t c = 0; c < d; ++c) mean[c] = 0.0;
  }
  for (int64_t r = 0; r < n; ++r) {
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
