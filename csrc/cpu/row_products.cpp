#include "row_products.h"

namespace sdd {
namespace cpu {
namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SDD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SDD_CLONES
#endif

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

inline __attribute__((always_inline)) Floats load16(const float* p) {
  Floats v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline __attribute__((always_inline)) float lane_sum(Floats v) {
  float sums[16];
  __builtin_memcpy(sums, &v, sizeof(sums));
  for (int width = 8; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) sums[l] += sums[l + width];
  }
  return sums[0];
}

// Dots of up to 4 rows with 2 points: 8 accumulators, 6 loads per 16 columns.
inline __attribute__((always_inline)) void block_dots(const float* const* row, const float* x0, const float* x1,
                                                      int64_t d, float out[2][4]) {
  const int64_t body = d / 16 * 16;
  Floats acc[2][4] = {};
  for (int64_t c = 0; c < body; c += 16) {
    const Floats a = load16(x0 + c), b = load16(x1 + c);
    for (int q = 0; q < 4; ++q) {
      const Floats r = load16(row[q] + c);
      acc[0][q] += a * r;
      acc[1][q] += b * r;
    }
  }
  for (int q = 0; q < 4; ++q) {
    float tail0 = 0.0f, tail1 = 0.0f;
    for (int64_t c = body; c < d; ++c) {
      tail0 += x0[c] * row[q][c];
      tail1 += x1[c] * row[q][c];
    }
    out[0][q] = lane_sum(acc[0][q]) + tail0;
    out[1][q] = lane_sum(acc[1][q]) + tail1;
  }
}

}  // namespace

SDD_CLONES void few_row_dots(const float* rows, int64_t n_rows, const float* x, const int64_t* points,
                             int64_t count, int64_t d, float* dots) {
  for (int64_t j0 = 0; j0 < n_rows; j0 += 4) {
    const float* row[4];
    for (int q = 0; q < 4; ++q) row[q] = rows + (j0 + q < n_rows ? j0 + q : j0) * d;  // extra lanes: repeats
    for (int64_t r = 0; r < count; r += 2) {
      const int64_t r1 = r + 1 < count ? r + 1 : r;
      float out[2][4];
      block_dots(row, x + points[r] * d, x + points[r1] * d, d, out);
      for (int q = 0; q < 4 && j0 + q < n_rows; ++q) {
        dots[(j0 + q) * count + r] = out[0][q];
        if (r1 != r) dots[(j0 + q) * count + r1] = out[1][q];
      }
    }
  }
}

SDD_CLONES double squared_distance(const float* a, const float* b, int64_t d) { return distance(a, b, d); }
SDD_CLONES double squared_distance(const double* a, const double* b, int64_t d) { return distance(a, b, d); }

}  // namespace cpu
}  // namespace sdd
