// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
//
// Every random draw of the project is a pure function of (seed, stream, problem, counter):
// no global generator is read or advanced, CPU and CUDA produce the same numbers, and
// problems can run in any order or in parallel without changing the result.
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SDD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SDD_HOST_DEVICE inline
#endif

namespace sdd {
namespace common {

// Independent random streams, so two uses of one seed never share numbers.
enum class RandomStream : uint32_t {
  kKmeansSeeding = 1,        // k-means++ draws of `kmeans` and of dse's per-image k-means
  kPatchPermutation = 2,     // M_dim patch permutation keys
  kGlobalKmeansSeeding = 3,  // k-means++ draws of dse's per-group k-means
};

struct Philox4x32 {
  uint32_t v[4];
};

SDD_HOST_DEVICE void mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  *lo = static_cast<uint32_t>(product);
}

// Philox4x32-10 on counter (c0..c3) with key (k0, k1).
SDD_HOST_DEVICE Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                         uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(kMul0, c0, &hi0, &lo0);
    mulhilo32(kMul1, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// One 32-bit draw for (seed, stream, problem, counter). The key is the 64-bit seed; the
// counter words are (counter, problem, stream, 0).
SDD_HOST_DEVICE uint32_t random_u32(int64_t seed, RandomStream stream, int64_t problem,
                                    int64_t counter) {
  const uint64_t s = static_cast<uint64_t>(seed);
  const Philox4x32 r = philox4x32_10(static_cast<uint32_t>(counter), static_cast<uint32_t>(problem),
                                     static_cast<uint32_t>(stream), static_cast<uint32_t>(counter >> 32),
                                     static_cast<uint32_t>(s), static_cast<uint32_t>(s >> 32));
  return r.v[0];
}

// Uniform draw in [0, 1) with 24 random bits (exactly representable in fp32 and fp64).
SDD_HOST_DEVICE double random_unit(int64_t seed, RandomStream stream, int64_t problem,
                                   int64_t counter) {
  return static_cast<double>(random_u32(seed, stream, problem, counter) >> 8) * (1.0 / 16777216.0);
}

}  // namespace common
}  // namespace sdd
