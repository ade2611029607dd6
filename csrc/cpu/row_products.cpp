#include "row_products.h"

#include <algorithm>
#include <limits>

#include "clones.h"

namespace sdd {
namespace cpu {
namespace {

constexpr int kSums = 16;  // four independent vector accumulators of four doubles

template <typename scalar_t>
inline __attribute__((always_inline)) double distance(const scalar_t* a, const scalar_t* b, int64_t d) {
  double sums[kSums] = {};
  int64_t j = 0;
  for (; j + kSums <= d; j += kSums) {
    for (int l = 0; l < kSums; ++l) {
      const double diff = static_cast<double>(a[j + l]) - static_cast<double>(b[j + l]);
      sums[l] += diff * diff;
    }
  }
  for (; j < d; ++j) {
    const double diff = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    sums[j % kSums] += diff * diff;
  }
  for (int width = kSums / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) sums[l] += sums[l + width];
  }
  return sums[0];
}

typedef float Floats __attribute__((vector_size(16 * sizeof(float))));
typedef int32_t Lanes32 __attribute__((vector_size(16 * sizeof(int32_t))));

inline __attribute__((always_inline)) Floats load16(const float* p) {
  Floats v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

// Lanes of a and b (indices 0-15 a's, 16-31 b's) in the given order.
#if defined(__clang__)
#define SDD_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SDD_SHUFFLE(a, b, ...) __builtin_shuffle(a, b, Lanes32{__VA_ARGS__})
#endif

// sums[j] = the sum of the 16 lanes of acc[j], j < 16, in lane_sum's order (lanes l and l + 8, then
// l + 4, l + 2, l + 1): four levels of shuffles, each halving the vectors and the lanes per sum.
inline __attribute__((always_inline)) Floats sum_lanes16(const Floats acc[16]) {
  Floats half[8], quarter[4], eighth[2];
  for (int j = 0; j < 8; ++j) {
    const Floats a = acc[2 * j], b = acc[2 * j + 1];
    half[j] = SDD_SHUFFLE(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
              SDD_SHUFFLE(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
  for (int j = 0; j < 4; ++j) {
    const Floats a = half[2 * j], b = half[2 * j + 1];
    quarter[j] = SDD_SHUFFLE(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
                 SDD_SHUFFLE(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  }
  for (int j = 0; j < 2; ++j) {
    const Floats a = quarter[2 * j], b = quarter[2 * j + 1];
    eighth[j] = SDD_SHUFFLE(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
                SDD_SHUFFLE(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  }
  const Floats a = eighth[0], b = eighth[1];
  return SDD_SHUFFLE(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         SDD_SHUFFLE(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

constexpr int kPoints = 3;  // points per block: with up to 5 rows, 15 accumulators, 8 loads per 15 multiply-adds

// dots[q * count + r] for the R rows `rows` [R, d] and every point r: blocks of kPoints points, whose
// R x kPoints products run over the columns in 16-lane partial sums, then one shuffle tree.
template <int R>
inline __attribute__((always_inline)) void row_block_dots(const float* rows, const float* const* point, int64_t r0,
                                                          int64_t count, int64_t d, float* dots) {
  static_assert(R * kPoints <= 16, "one shuffle tree per block");
  const int64_t body = d / 16 * 16;
  Floats acc[16] = {};
  for (int64_t c = 0; c < body; c += 16) {
    Floats x[kPoints];
    for (int p = 0; p < kPoints; ++p) x[p] = load16(point[p] + c);
    for (int q = 0; q < R; ++q) {
      const Floats row = load16(rows + q * d + c);
      for (int p = 0; p < kPoints; ++p) acc[q * kPoints + p] += x[p] * row;
    }
  }
  const Floats sums = sum_lanes16(acc);
  for (int q = 0; q < R; ++q) {
    for (int p = 0; p < kPoints && r0 + p < count; ++p) {
      float tail = 0.0f;
      for (int64_t c = body; c < d; ++c) tail += point[p][c] * rows[q * d + c];
      dots[q * count + r0 + p] = sums[q * kPoints + p] + tail;
    }
  }
}

}  // namespace

SDD_CLONES void row_dots(const float* rows, int64_t n_rows, const float* x, const int64_t* points, int64_t count,
                         int64_t d, float* dots) {
  for (int64_t r0 = 0; r0 < count; r0 += kPoints) {
    const float* point[kPoints];  // past the end: the last point again (its products are not written)
    for (int p = 0; p < kPoints; ++p) {
      const int64_t r = r0 + p < count ? r0 + p : count - 1;
      point[p] = x + (points != nullptr ? points[r] : r) * d;
    }
    // Rows by fours; the last block takes the rest (1-3, or 5 after a four).
    for (int64_t j0 = 0; j0 < n_rows;) {
      const int64_t left = n_rows - j0;
      const float* block = rows + j0 * d;
      float* out = dots + j0 * count;
      if (left == 5) {
        row_block_dots<5>(block, point, r0, count, d, out);
      } else if (left == 3) {
        row_block_dots<3>(block, point, r0, count, d, out);
      } else if (left == 2) {
        row_block_dots<2>(block, point, r0, count, d, out);
      } else if (left == 1) {
        row_block_dots<1>(block, point, r0, count, d, out);
      } else {
        row_block_dots<4>(block, point, r0, count, d, out);
      }
      j0 += left == 5 || left < 4 ? left : 4;
    }
  }
}

SDD_CLONES double squared_distance(const float* a, const float* b, int64_t d) { return distance(a, b, d); }
SDD_CLONES double squared_distance(const double* a, const double* b, int64_t d) { return distance(a, b, d); }

SDD_CLONES DistanceBounds squared_distance_bounds(const float* a, const float* b, int64_t d) {
  // Four vector accumulators (one would make a chain of d / 16 dependent multiply-adds), summed in
  // a tree; the bound below holds for any order of the sum.
  Floats acc[4] = {};
  int64_t c = 0;
  for (; c + 64 <= d; c += 64) {
    for (int q = 0; q < 4; ++q) {
      const Floats diff = load16(a + c + 16 * q) - load16(b + c + 16 * q);
      acc[q] += diff * diff;
    }
  }
  for (int q = 0; c + 16 <= d; c += 16, ++q) {
    const Floats diff = load16(a + c) - load16(b + c);
    acc[q] += diff * diff;
  }
  const Floats both = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  float lanes[16];
  __builtin_memcpy(lanes, &both, sizeof(lanes));
  for (int width = 8; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  }
  float sum = lanes[0];
  for (; c < d; ++c) sum += (a[c] - b[c]) * (a[c] - b[c]);
  // Each difference is off by at most u relative, and each term passes through at most d + 2
  // roundings of the sum (far fewer here) in any order: the exact value and the sum are within a
  // factor (1 + u)^(d + 4), i.e. within 2 (d + 4) u relative, of each other (all terms are >= 0); an
  // underflowing (or flushed) step adds at most the smallest normal float.
  const double u = 0.5 * static_cast<double>(std::numeric_limits<float>::epsilon());
  const double steps = static_cast<double>(d + 4), relative = 2.0 * steps * u;
  const double absolute = steps * std::numeric_limits<float>::min();
  const double value = static_cast<double>(sum);
  return {std::max(0.0, value * (1.0 - relative) - absolute), value * (1.0 + relative) + absolute};
}

SDD_CLONES void add_row(double* sums, const float* row, int64_t d) {
  for (int64_t c = 0; c < d; ++c) sums[c] += static_cast<double>(row[c]);
}
SDD_CLONES void add_row(double* sums, const double* row, int64_t d) {
  for (int64_t c = 0; c < d; ++c) sums[c] += row[c];
}

}  // namespace cpu
}  // namespace sdd
