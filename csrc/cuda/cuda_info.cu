// CUDA part of the build. The kernels of every op land here as csrc/cuda/<op>_kernel.cu;
// for now this unit proves the CUDA toolchain works and reports its version.
#include <cuda_runtime_api.h>

#include <ATen/cuda/CUDAContext.h>

#include <cstdint>

namespace sdd {

int64_t cuda_runtime_version() { return CUDART_VERSION; }

}  // namespace sdd
