#pragma GCC optimize("fp-contract=off")  // see prepare_rows.h

#include "prepare_rows.h"

#include <algorithm>

#include "../inputs/features.h"  // kNormEps
#include "clones.h"

namespace sdd {
namespace cpu {
namespace {

template <typename scalar_t>
inline __attribute__((always_inline)) void normalize(const scalar_t* f, int64_t d, double norm, double factor,
                                                     scalar_t* x, double* column_sums) {
  for (int64_t j = 0; j < d; ++j) {
    x[j] = static_cast<scalar_t>(static_cast<double>(f[j]) / norm * factor);
    column_sums[j] += static_cast<double>(x[j]);
  }
}

template <typename scalar_t>
inline __attribute__((always_inline)) void unscale(const scalar_t* g, const scalar_t* f, int64_t d, double norm,
                                                   double factor, scalar_t* out) {
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
    out[j] = static_cast<scalar_t>(value);
  }
}

}  // namespace

SDD_CLONES void normalized_row(const float* f, int64_t d, double norm, double factor, float* x, double* column_sums) {
  normalize(f, d, norm, factor, x, column_sums);
}
SDD_CLONES void normalized_row(const double* f, int64_t d, double norm, double factor, double* x,
                               double* column_sums) {
  normalize(f, d, norm, factor, x, column_sums);
}

SDD_CLONES void unscaled_row(const float* g, const float* f, int64_t d, double norm, double factor, float* out) {
  unscale(g, f, d, norm, factor, out);
}
SDD_CLONES void unscaled_row(const double* g, const double* f, int64_t d, double norm, double factor, double* out) {
  unscale(g, f, d, norm, factor, out);
}

}  // namespace cpu
}  // namespace sdd
