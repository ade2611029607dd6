// sdd::effective_rank(_backward) on CUDA: one block per matrix (csrc/kernels/spectra.h).
#include <torch/library.h>

#include "instances.h"

namespace sdd {
namespace device_ops {

template at::Tensor effective_ranks<cuda::CudaBackend>(const at::Tensor&, const at::Tensor&);

TORCH_LIBRARY_IMPL(sdd, CUDA, m) {
  m.impl("effective_rank", &effective_rank_op<cuda::CudaBackend>);
  m.impl("effective_rank_backward", &effective_rank_backward_op<cuda::CudaBackend>);
}

}  // namespace device_ops
}  // namespace sdd
