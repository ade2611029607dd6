// Products of rows for the k-means kernels: squared distances in float64 and dot products of a few
// rows with many.
//
// One copy of each per instruction set (AVX-512, AVX2 + FMA, baseline x86-64; GCC function multi-
// versioning picks one at load time), summed in a fixed order: 16 running sums, then pairwise.
// Every caller on a machine gets the same value for the same pair (the plain and the bound-based
// assignment rely on it); machines with FMA round the running sums once per step instead of
// twice, so the last bits can differ between machine kinds.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace sdd {
namespace cpu {

double squared_distance(const float* a, const float* b, int64_t d);
double squared_distance(const double* a, const double* b, int64_t d);

// Bounds of the exact squared distance ||a - b||^2 from float32 differences and sums (one 16-lane
// accumulator, then its lanes): lower <= exact <= upper for any rounding of those steps, each within
// ~5e-5 relative of it at d = 384. For k-means' bounds, never for reported values.
struct DistanceBounds {
  double lower, upper;
};
DistanceBounds squared_distance_bounds(const float* a, const float* b, int64_t d);

// Relative error bound gamma of a d-term dot product summed in any order in a type of unit roundoff
// u: |fl(a.b) - a.b| <= gamma ||a|| ||b|| (Higham, Thm 3.5: d u / (1 - d u); 1.5x and d + 2 cover
// the float64 steps around it).
inline double dot_product_error(int64_t d, double u) {
  const double du = static_cast<double>(d + 2) * u;
  return 1.5 * du / (1.0 - du);
}

// Error bound of a squared distance ||a||^2 + ||b||^2 - 2 a.b whose a.b carries a relative error of at
// most gamma (dot_product_error), from aa = ||a||^2, b_norm = ||b|| and bb = ||b||^2 (or bounds above
// them); the float64 terms add a few ulps of the norms.
inline double product_error(double gamma, double aa, double b_norm, double bb) {
  return 2.0 * gamma * std::sqrt(aa) * b_norm + 8.0 * std::numeric_limits<double>::epsilon() * (aa + bb);
}

// sums [d] += row [d] in float64, element by element (the same bits in every copy).
void add_row(double* sums, const float* row, int64_t d);
void add_row(double* sums, const double* row, int64_t d);

// dots[j * count + r] = rows[j] . x[points[r]] (points == nullptr: x[r]) for j < n_rows (k-means++
// candidates, centroids) and r < count; x [*, d] and rows [n_rows, d] row-major. float32 sums, as a
// GEMM would take them: 16 running sums per product, then pairwise. Points go three at a time
// against blocks of up to five rows, read where they lie (no gather, no packing).
void row_dots(const float* rows, int64_t n_rows, const float* x, const int64_t* points, int64_t count, int64_t d,
              float* dots);

}  // namespace cpu
}  // namespace sdd
