// The thread-block abstraction every kernel body is written against.
//
// A kernel body is `template <class Block> SDD_KERNEL static void run(Block& b, Args args)`.
// nvcc compiles it for the GPU with a CudaBlock (csrc/cuda/launch.cuh); the host compiler
// compiles the same source for the CPU block emulator (csrc/emulator/emulator.h), which runs
// one std::thread per CUDA thread, so indexing, barriers and shared memory are exercised
// (and checked by ThreadSanitizer / AddressSanitizer) on machines without a GPU.
//
// A Block provides:
//   int thread(), threads()                 threadIdx.x, blockDim.x (a multiple of 32)
//   int block_x(), block_y(), blocks_x()    blockIdx.x, blockIdx.y, gridDim.x
//   void sync()                             __syncthreads(): every thread must reach it
//   unsigned char* shared_bytes()           the dynamic shared memory of the launch
//   T shfl_xor(T v, int mask)               __shfl_xor_sync over the full warp
// Rules: no static __shared__ arrays (only the dynamic buffer, whose size the launch states),
// no early return of part of a block before a sync(), no float atomics (results must not
// depend on scheduling).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SDD_KERNEL __device__ __forceinline__
#else
#define SDD_KERNEL inline
#endif

namespace sdd {
namespace kernels {

constexpr int kWarp = 32;
constexpr int kThreads = 256;        // threads per block of every launch
constexpr int kReduceScratch = 32;   // doubles at the start of shared memory for block reductions

// Grid of a launch: blocks_x * blocks_y blocks.
struct Grid {
  int64_t x = 1, y = 1;
};

template <class T>
SDD_KERNEL T min_of(T a, T b) { return b < a ? b : a; }

// Points of problem p when problems of M points lie back to back and only `total` points exist
// (dse's last group of images may be smaller).
SDD_KERNEL int64_t problem_size(int64_t p, int64_t M, int64_t total) { return min_of(M, total - p * M); }

// Sum over the warp; every lane gets the same bits (IEEE addition is commutative).
template <class Block>
SDD_KERNEL double warp_sum(Block& b, double v) {
  for (int mask = kWarp / 2; mask >= 1; mask >>= 1) v += b.shfl_xor(v, mask);
  return v;
}

// Sum over the block in a fixed order (deterministic); every thread gets the result.
// `scratch`: kReduceScratch doubles of shared memory, free before and after the call.
template <class Block>
SDD_KERNEL double block_sum(Block& b, double v, double* scratch) {
  v = warp_sum(b, v);
  const int warp = b.thread() / kWarp, warps = b.threads() / kWarp;
  if (b.thread() % kWarp == 0) scratch[warp] = v;
  b.sync();
  double total = 0.0;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  b.sync();
  return total;
}

// Shared-memory carve-up: consecutive aligned slices of the dynamic buffer.
class SharedCursor {
 public:
  SDD_KERNEL explicit SharedCursor(unsigned char* base) : next_(base) {}
  template <class T>
  SDD_KERNEL T* take(int64_t count) {
    T* out = reinterpret_cast<T*>(next_);
    next_ += (count * static_cast<int64_t>(sizeof(T)) + 15) / 16 * 16;
    return out;
  }

 private:
  unsigned char* next_;
};

// Bytes a SharedCursor needs for `count` elements of T.
template <class T>
constexpr int64_t shared_size(int64_t count) {
  return (count * static_cast<int64_t>(sizeof(T)) + 15) / 16 * 16;
}

}  // namespace kernels
}  // namespace sdd
