// Row passes of the feature preparation (prepare.cpp). float32 / float64 rows take one copy per
// instruction set (prepare_rows.cpp, clones.h), compiled without contracting multiply-adds: each
// rounds as the generic template does (an IEEE division is the same in every copy), so prepared
// features are the same bits on every machine. Other dtypes (float16, bfloat16) take the template.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../inputs/features.h"  // kNormEps

namespace sdd {
namespace cpu {

// x [d] <- f / norm * factor, rounded to x's dtype (norm 1: no normalisation); column_sums [d] += x.
template <typename in_t, typename out_t>
inline __attribute__((always_inline)) void normalized_row_inline(const in_t* f, int64_t d, double norm, double factor,
                                                                 out_t* x, double* column_sums) {
  for (int64_t j = 0; j < d; ++j) {
    x[j] = static_cast<out_t>(static_cast<double>(f[j]) / norm * factor);
    column_sums[j] += static_cast<double>(x[j]);
  }
}

// out [d] <- the gradient g * factor taken through f / max(||f||, eps), norm = ||f||: (g - u (u . g)) / norm
// with u = f / norm, or g / eps where norm <= eps; rounded to g's dtype, then out's. u . g in eight
// running sums combined pairwise.
template <typename grad_t, typename scalar_t>
inline __attribute__((always_inline)) void unscaled_row_inline(const grad_t* g, const scalar_t* f, int64_t d,
                                                               double norm, double factor, scalar_t* out) {
  const double inverse = 1.0 / std::max(norm, kNormEps);
  double sums[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};  // unit . g, column j in sum j mod 8
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    for (int l = 0; l < 8; ++l) {
      sums[l] += static_cast<double>(f[j + l]) * inverse * (static_cast<double>(g[j + l]) * factor);
    }
  }
  for (; j < d; ++j) sums[j % 8] += static_cast<double>(f[j]) * inverse * (static_cast<double>(g[j]) * factor);
  const double radial = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
  for (j = 0; j < d; ++j) {
    const double gj = static_cast<double>(g[j]) * factor;
    const double value = norm > kNormEps ? (gj - static_cast<double>(f[j]) * inverse * radial) * inverse : gj * inverse;
    out[j] = static_cast<scalar_t>(static_cast<grad_t>(value));
  }
}

void normalized_row(const float* f, int64_t d, double norm, double factor, float* x, double* column_sums);
void normalized_row(const double* f, int64_t d, double norm, double factor, double* x, double* column_sums);
template <typename in_t, typename out_t>
void normalized_row(const in_t* f, int64_t d, double norm, double factor, out_t* x, double* column_sums) {
  normalized_row_inline(f, d, norm, factor, x, column_sums);
}

void unscaled_row(const float* g, const float* f, int64_t d, double norm, double factor, float* out);
void unscaled_row(const double* g, const double* f, int64_t d, double norm, double factor, double* out);
template <typename grad_t, typename scalar_t>
void unscaled_row(const grad_t* g, const scalar_t* f, int64_t d, double norm, double factor, scalar_t* out) {
  unscaled_row_inline(g, f, d, norm, factor, out);
}

}  // namespace cpu
}  // namespace sdd
