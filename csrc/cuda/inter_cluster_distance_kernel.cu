// sdd::inter_cluster_distance(_backward) on CUDA: one block per problem (csrc/kernels/inter.h).
#include <torch/library.h>

#include "instances.h"

namespace sdd {
namespace device_ops {

template std::tuple<at::Tensor, at::Tensor> inter_forward<cuda::CudaBackend>(const at::Tensor&, const at::Tensor&,
                                                                             const at::Tensor&, int64_t,
                                                                             const at::Tensor&);
template void inter_backward<cuda::CudaBackend>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                                const at::Tensor&, at::Tensor&, at::Tensor*);

TORCH_LIBRARY_IMPL(sdd, CUDA, m) {
  m.impl("inter_cluster_distance", &inter_cluster_distance_op<cuda::CudaBackend>);
  m.impl("inter_cluster_distance_backward", &inter_cluster_distance_backward_op<cuda::CudaBackend>);
}

}  // namespace device_ops
}  // namespace sdd
