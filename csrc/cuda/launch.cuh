// The GPU side of the kernel layer: CudaBlock (csrc/kernels/block.h's Block on real CUDA
// threads) and CudaBackend::launch, which runs a kernel body on the current stream. The CPU
// block emulator (csrc/emulator/emulator.h) provides the same two names for the tests.
#pragma once

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../kernels/block.h"

namespace sdd {
namespace cuda {

struct CudaBlock {
  __device__ __forceinline__ int thread() const { return threadIdx.x; }
  __device__ __forceinline__ int threads() const { return blockDim.x; }
  __device__ __forceinline__ int block_x() const { return blockIdx.x; }
  __device__ __forceinline__ int block_y() const { return blockIdx.y; }
  __device__ __forceinline__ int blocks_x() const { return gridDim.x; }
  __device__ __forceinline__ void sync() const { __syncthreads(); }
  __device__ __forceinline__ unsigned char* shared_bytes() const {
    extern __shared__ __align__(16) unsigned char sdd_dynamic_shared[];
    return sdd_dynamic_shared;
  }
  template <class T>
  __device__ __forceinline__ T shfl_xor(T v, int mask) const {
    return __shfl_xor_sync(0xffffffffu, v, mask);
  }
};

template <class Kernel>
__global__ void __launch_bounds__(kernels::kThreads) kernel_entry(const typename Kernel::Args args) {
  CudaBlock block;
  Kernel::run(block, args);
}

struct CudaBackend {
  using Guard = c10::cuda::OptionalCUDAGuard;  // launches go to the input's device

  // Runs Kernel::run on grid.x * grid.y blocks of kernels::kThreads threads with
  // `shared_bytes` of dynamic shared memory, on the current stream; checks the launch.
  template <class Kernel>
  static void launch(kernels::Grid grid, int64_t shared_bytes, const typename Kernel::Args& args) {
    if (grid.x <= 0 || grid.y <= 0) return;
    TORCH_CHECK(grid.y <= 65535, "sdd: too many problems for one launch (", grid.y, " > 65535)");
    auto* entry = &kernel_entry<Kernel>;
    if (shared_bytes > 48 * 1024) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(entry, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(shared_bytes)));
    }
    entry<<<dim3(static_cast<unsigned>(grid.x), static_cast<unsigned>(grid.y)), kernels::kThreads, shared_bytes,
            at::cuda::getCurrentCUDAStream()>>>(args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

}  // namespace cuda
}  // namespace sdd
