// sdd::kmeans on CUDA: one block per problem (csrc/kernels/kmeans.h).
#include <torch/library.h>

#include "instances.h"

namespace sdd {
namespace device_ops {

template void run_kmeans<cuda::CudaBackend>(const at::Tensor&, int64_t, const KmeansOptions&, common::RandomStream,
                                            at::Tensor&, at::Tensor&, at::Tensor&);
template void run_cluster_means<cuda::CudaBackend>(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                                   at::Tensor&, at::Tensor&);

TORCH_LIBRARY_IMPL(sdd, CUDA, m) { m.impl("kmeans", &kmeans_op<cuda::CudaBackend>); }

}  // namespace device_ops
}  // namespace sdd
