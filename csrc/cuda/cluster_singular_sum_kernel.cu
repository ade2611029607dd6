// sdd::cluster_singular_sum(_backward) on CUDA: points sorted by cluster, then one block per
// cluster builds its fp64 Gram and diagonalises it (csrc/kernels/spectra.h).
#include <torch/library.h>

#include "instances.h"

namespace sdd {
namespace device_ops {

template ClusterLayout sort_clusters<cuda::CudaBackend>(const at::Tensor&, int64_t, int64_t, int64_t);
template at::Tensor cluster_spectra<cuda::CudaBackend>(const at::Tensor&, const ClusterLayout&, int64_t,
                                                       const at::Tensor&, at::Tensor*);

TORCH_LIBRARY_IMPL(sdd, CUDA, m) {
  m.impl("cluster_singular_sum", &cluster_singular_sum_op<cuda::CudaBackend>);
  m.impl("cluster_singular_sum_backward", &cluster_singular_sum_backward_op<cuda::CudaBackend>);
}

}  // namespace device_ops
}  // namespace sdd
