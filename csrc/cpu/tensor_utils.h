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

// ||row||^2 of `count` contiguous rows of length d, accumulated in float64.
template <typename scalar_t>
std::vector<double> squared_norms(const scalar_t* rows, int64_t count, int64_t d) {
  std::vector<double> norms(count);
  for (int64_t i = 0; i < count; ++i) {
    double total = 0.0;
    for (int64_t j = 0; j < d; ++j) total += static_cast<double>(rows[i * d + j]) * rows[i * d + j];
    norms[i] = total;
  }
  return norms;
}

}  // namespace cpu
}  // namespace sdd
