// The CUDA runtime version the kernels were built with (sdd_fast.cuda_version()).
#include <cuda_runtime_api.h>

#include <cstdint>

namespace sdd {

int64_t cuda_runtime_version() { return CUDART_VERSION; }

}  // namespace sdd
