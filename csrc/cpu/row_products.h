// Products of rows for the k-means kernels: squared distances in float64 and dot products of a few
// rows with many.
//
// One copy of each per instruction set (AVX-512, AVX2 + FMA, baseline x86-64; GCC function multi-
// versioning picks one at load time), summed in a fixed order: 16 running sums, then pairwise.
// Every caller on a machine gets the same value for the same pair (the plain and the bound-based
// assignment rely on it); machines with FMA round the running sums once per step instead of
// twice, so the last bits can differ between machine kinds.
#pragma once

#include <cstdint>

namespace sdd {
namespace cpu {

double squared_distance(const float* a, const float* b, int64_t d);
double squared_distance(const double* a, const double* b, int64_t d);

// dots[j * count + r] = rows[j] . x[points[r]] (float32 sums, as a GEMM would take them; 16 running
// sums per product, then pairwise) for j < n_rows (a few: k-means++ candidates) and r < count;
// x [*, d] and rows [n_rows, d] row-major. Reads each point once, two at a time, with no copy.
void few_row_dots(const float* rows, int64_t n_rows, const float* x, const int64_t* points, int64_t count,
                  int64_t d, float* dots);

}  // namespace cpu
}  // namespace sdd
