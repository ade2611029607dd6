// Small helpers shared by the CPU op wrappers.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "../inputs/options.h"  // compute_dtype

namespace sdd {
namespace cpu {

// `t` in its compute dtype, contiguous (no copy when it already is).
inline at::Tensor compute_copy(const at::Tensor& t) { return t.to(compute_dtype(t)).contiguous(); }

// A 1-D tensor of `options`' dtype holding `values` (accumulated in float64).
inline at::Tensor tensor_from(const std::vector<double>& values, const at::TensorOptions& options) {
  return at::tensor(values, options.dtype(at::kDouble)).to(options.dtype());
}

// sum_j (row[j] - center[j])^2 (center null: 0) in float64, in 8 running sums combined in a fixed
// order: a vectorisable loop, not one serial chain of additions; the same rounding on any machine.
typedef double EightDoubles __attribute__((vector_size(8 * sizeof(double))));

template <typename scalar_t>
inline __attribute__((always_inline)) double sum_of_squares_inline(const scalar_t* row, int64_t d,
                                                                   const double* center) {
  EightDoubles sums = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};  // lane l: the columns j = l mod 8
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    EightDoubles x;
    for (int l = 0; l < 8; ++l) x[l] = static_cast<double>(row[j + l]);
    if (center != nullptr) {
      EightDoubles c;
      __builtin_memcpy(&c, center + j, sizeof(c));
      x -= c;
    }
    sums += x * x;
  }
  double lanes[8];
  __builtin_memcpy(lanes, &sums, sizeof(lanes));
  for (; j < d; ++j) {
    const double x = static_cast<double>(row[j]) - (center != nullptr ? center[j] : 0.0);
    lanes[j % 8] += x * x;
  }
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// float32 / float64 rows: the per-instruction-set copies of row_norms.cpp (the same rounding).
double sum_of_squares(const float* row, int64_t d, const double* center = nullptr);
double sum_of_squares(const double* row, int64_t d, const double* center = nullptr);

template <typename scalar_t>
double sum_of_squares(const scalar_t* row, int64_t d, const double* center = nullptr) {
  return sum_of_squares_inline(row, d, center);
}

// ||row||^2 of `count` contiguous rows of length d, accumulated in float64.
template <typename scalar_t>
std::vector<double> squared_norms(const scalar_t* rows, int64_t count, int64_t d) {
  std::vector<double> norms(count);
  for (int64_t i = 0; i < count; ++i) norms[i] = sum_of_squares(rows + i * d, d);
  return norms;
}

}  // namespace cpu
}  // namespace sdd
