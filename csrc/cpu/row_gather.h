// Rows of a feature table copied into the spectral kernels' stacked matrices and their gradients
// added back: one copy per instruction set (clones.h), the same bits in each (no operation that
// could fuse: converts, subtractions, additions in a fixed order).
#pragma once

#include <cstdint>

namespace sdd {
namespace cpu {

// out [n, d] <- rows `rows` of table [*, d], as float64 (or float32 from a float32 table); when
// centered, minus their mean row (float64 sums in row order over n, in `mean` [d] scratch).
void gather_rows(const float* table, const int64_t* rows, int64_t n, int64_t d, bool centered, double* mean,
                 double* out);
void gather_rows(const double* table, const int64_t* rows, int64_t n, int64_t d, bool centered, double* mean,
                 double* out);
void gather_rows(const float* table, const int64_t* rows, int64_t n, int64_t d, bool centered, double* mean,
                 float* out);

// table[rows[r]] += grad[r] for r < n (grad [n, d]); when centered, grad loses its mean row first
// (float64 sums in `mean` [d]; grad is overwritten): the gradient through the centering.
void scatter_rows(float* grad, const int64_t* rows, int64_t n, int64_t d, bool centered, double* mean, float* table);
void scatter_rows(double* grad, const int64_t* rows, int64_t n, int64_t d, bool centered, double* mean,
                  double* table);

}  // namespace cpu
}  // namespace sdd
