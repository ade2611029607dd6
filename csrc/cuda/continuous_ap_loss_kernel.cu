// sdd::continuous_ap_loss(_backward) on CUDA: one block per anchor (csrc/kernels/ap_loss.h).
#include <torch/library.h>

#include "../device_ops/ap_loss.h"
#include "launch.cuh"

namespace sdd {
namespace device_ops {

TORCH_LIBRARY_IMPL(sdd, CUDA, m) {
  m.impl("continuous_ap_loss", &continuous_ap_loss_op<cuda::CudaBackend>);
  m.impl("continuous_ap_loss_backward", &continuous_ap_loss_backward_op<cuda::CudaBackend>);
}

}  // namespace device_ops
}  // namespace sdd
