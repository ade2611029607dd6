// Host side of the kernel-layer ops, written once for every Backend: the GPU
// (csrc/cuda/launch.cuh) and the CPU block emulator (csrc/emulator/emulator.h). These
// functions only allocate with ATen on the input's device and launch kernels: no host sync,
// no data-dependent shape, so the CUDA path is graph-capturable.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <tuple>

#include "../common/philox.h"
#include "../cpu/tensor_utils.h"
#include "../kernels/kmeans.h"
#include "../inputs/options.h"

namespace sdd {
namespace device_ops {

using cpu::compute_copy;

inline int seeding_code(Seeding seeding) {
  return seeding == Seeding::kGreedy ? kernels::kSeedGreedy
         : seeding == Seeding::kD2   ? kernels::kSeedD2
                                     : kernels::kSeedD;
}

// k-means of the problems of x [P, M, d] (compute dtype, contiguous; problem p holds
// min(M, total - p * M) points) into centroids [P, k, d], labels [P, M] and inertia [P] (fp64).
template <class Backend>
void run_kmeans(const at::Tensor& x, int64_t total, const KmeansOptions& options, common::RandomStream stream,
                at::Tensor& centroids, at::Tensor& labels, at::Tensor& inertia) {
  const int64_t P = x.size(0), M = x.size(1), d = x.size(2), k = options.k;
  const at::Tensor work = at::empty({P, kernels::kmeans_work_size(M, d, k)}, x.options().dtype(at::kDouble));
  const bool trials = options.n_init > 1;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::kmeans", [&] {
    const at::Tensor trial_centroids = trials ? at::empty_like(centroids) : at::Tensor();
    const at::Tensor trial_labels = trials ? at::empty_like(labels) : at::Tensor();
    const kernels::KmeansArgs<scalar_t> args{
        x.data_ptr<scalar_t>(), M, d, k, total, options.iters, options.tol, options.n_init,
        seeding_code(options.seeding), options.seed, static_cast<uint32_t>(stream), centroids.data_ptr<scalar_t>(),
        labels.data_ptr<int64_t>(), inertia.data_ptr<double>(), work.data_ptr<double>(),
        trials ? trial_centroids.data_ptr<scalar_t>() : nullptr, trials ? trial_labels.data_ptr<int64_t>() : nullptr};
    Backend::template launch<kernels::KmeansKernel<scalar_t>>({P, 1}, kernels::kmeans_shared_bytes(), args);
  });
}

// Means of the labelled clusters of x (as run_kmeans) into centroids [P, k, d], counts [P, k].
template <class Backend>
void run_cluster_means(const at::Tensor& x, const at::Tensor& labels, int64_t total, int64_t k, at::Tensor& centroids,
                       at::Tensor& counts) {
  const int64_t P = x.size(0), M = x.size(1), d = x.size(2);
  const at::Tensor work = at::empty({P, k * d + k}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::cluster_means", [&] {
    const kernels::ClusterMeansArgs<scalar_t> args{x.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), M, d, k,
                                                   total, centroids.data_ptr<scalar_t>(), counts.data_ptr<int64_t>(),
                                                   work.data_ptr<double>()};
    Backend::template launch<kernels::ClusterMeansKernel<scalar_t>>(
        {P, 1}, kernels::shared_size<double>(kernels::kReduceScratch), args);
  });
}

// The op sdd::kmeans.
template <class Backend>
std::tuple<at::Tensor, at::Tensor, at::Tensor> kmeans_op(const at::Tensor& x, int64_t k, int64_t iters, double tol,
                                                         int64_t n_init, c10::string_view seeding, int64_t seed) {
  const KmeansOptions options = check_kmeans_inputs(x, k, iters, tol, n_init, std::string(seeding), seed);
  const typename Backend::Guard guard(x.device());
  const at::Tensor xc = compute_copy(x);
  const int64_t P = xc.size(0), M = xc.size(1), d = xc.size(2);
  at::Tensor centroids = at::empty({P, k, d}, xc.options());
  at::Tensor labels = at::empty({P, M}, xc.options().dtype(at::kLong));
  at::Tensor inertia = at::empty({P}, xc.options().dtype(at::kDouble));
  run_kmeans<Backend>(xc, P * M, options, common::RandomStream::kKmeansSeeding, centroids, labels, inertia);
  return {centroids, labels, inertia.to(xc.scalar_type())};
}

}  // namespace device_ops
}  // namespace sdd
