// The CUDA instantiations of the templated host functions of csrc/device_ops/, each compiled
// once in the op's own unit (<op>_kernel.cu) and reused by dse_kernel.cu.
#pragma once

#include "../device_ops/inter.h"
#include "../device_ops/kmeans.h"
#include "../device_ops/spectra.h"
#include "launch.cuh"

namespace sdd {
namespace device_ops {

extern template void run_kmeans<cuda::CudaBackend>(const at::Tensor&, int64_t, const KmeansOptions&,
                                                   common::RandomStream, at::Tensor&, at::Tensor&, at::Tensor&);
extern template void run_cluster_means<cuda::CudaBackend>(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                                          at::Tensor&, at::Tensor&);
extern template ClusterLayout sort_clusters<cuda::CudaBackend>(const at::Tensor&, int64_t, int64_t, int64_t);
extern template at::Tensor cluster_spectra<cuda::CudaBackend>(const at::Tensor&, const ClusterLayout&, int64_t,
                                                              const at::Tensor&, at::Tensor*);
extern template at::Tensor effective_ranks<cuda::CudaBackend>(const at::Tensor&, const at::Tensor&);
extern template std::tuple<at::Tensor, at::Tensor> inter_forward<cuda::CudaBackend>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, const at::Tensor&);
extern template void inter_backward<cuda::CudaBackend>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                       int64_t, const at::Tensor&, at::Tensor&, at::Tensor*);

}  // namespace device_ops
}  // namespace sdd
