// Row passes of the feature preparation (prepare.cpp) for float32 / float64 features, one copy per
// instruction set (clones.h), compiled without contracting multiply-adds: each rounds as the generic
// loops do (an IEEE division is the same in every copy), so prepared features are the same bits on
// every machine.
#pragma once

#include <cstdint>

namespace sdd {
namespace cpu {

// x [d] <- f / norm * factor, rounded to x's dtype (norm 1: no normalisation); column_sums [d] += x.
void normalized_row(const float* f, int64_t d, double norm, double factor, float* x, double* column_sums);
void normalized_row(const double* f, int64_t d, double norm, double factor, double* x, double* column_sums);

// out [d] <- the gradient g * factor taken through f / max(||f||, eps), norm = ||f||: (g - u (u . g)) / norm
// with u = f / norm, or g / eps where norm <= eps. u . g in eight running sums combined pairwise.
void unscaled_row(const float* g, const float* f, int64_t d, double norm, double factor, float* out);
void unscaled_row(const double* g, const double* f, int64_t d, double norm, double factor, double* out);

}  // namespace cpu
}  // namespace sdd
