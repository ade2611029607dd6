// sdd::dse_forward / sdd::dse_backward on CUDA: the building blocks' kernels (instantiated in
// their own units) composed on the current stream with no host sync (csrc/device_ops/dse.h).
#include <torch/library.h>

#include "../device_ops/dse.h"
#include "instances.h"

namespace sdd {
namespace device_ops {

TORCH_LIBRARY_IMPL(sdd, CUDA, m) {
  m.impl("dse_forward", &dse_forward_op<cuda::CudaBackend>);
  m.impl("dse_backward", &dse_backward_op<cuda::CudaBackend>);
}

}  // namespace device_ops
}  // namespace sdd
