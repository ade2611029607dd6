// Host side of the nearest-other-centroid kernels (csrc/kernels/inter.h) for every Backend.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <limits>
#include <tuple>

#include "../kernels/inter.h"
#include "kmeans.h"

namespace sdd {
namespace device_ops {

// x [P, M, d], centroids [P, k, d] (one compute dtype, contiguous), labels [P, M]; problem p
// holds min(M, total - p * M) points. counts [P, k] (optional): only non-empty clusters
// compete. Returns (mean distance [P] fp64, NaN for a bad label; other [P, M], -1 = none).
template <class Backend>
std::tuple<at::Tensor, at::Tensor> inter_forward(const at::Tensor& x, const at::Tensor& centroids,
                                                 const at::Tensor& labels, int64_t total,
                                                 const at::Tensor& counts = at::Tensor()) {
  const int64_t P = x.size(0), M = x.size(1), d = x.size(2), k = centroids.size(1);
  at::Tensor mean = at::empty({P}, x.options().dtype(at::kDouble));
  at::Tensor other = at::full({P, M}, -1, labels.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::inter_cluster_distance", [&] {
    const kernels::InterArgs<scalar_t> args{x.data_ptr<scalar_t>(), centroids.data_ptr<scalar_t>(),
                                            labels.data_ptr<int64_t>(),
                                            counts.defined() ? counts.data_ptr<int64_t>() : nullptr,
                                            M, d, k, total, other.data_ptr<int64_t>(), mean.data_ptr<double>(),
                                            nullptr, nullptr, nullptr, nullptr};
    Backend::template launch<kernels::InterForwardKernel<scalar_t>>(
        {P, 1}, kernels::shared_size<double>(kernels::kReduceScratch) + kernels::distance_tiles_bytes(), args);
  });
  return {mean, other};
}

// grad_x += d (sum_p grad_mean[p] * mean_p) / d x for the fixed nearest-other choice `other`;
// grad_centroids (optional) receives the centroids' gradient.
template <class Backend>
void inter_backward(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& other, int64_t total,
                    const at::Tensor& grad_mean, at::Tensor& grad_x, at::Tensor* grad_centroids) {
  const int64_t P = x.size(0), M = x.size(1), d = x.size(2), k = centroids.size(1);
  const at::Tensor coeff = at::empty({P, M}, x.options().dtype(at::kDouble));
  const at::Tensor g = grad_mean.to(at::kDouble).contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::inter_cluster_distance_backward", [&] {
    const kernels::InterArgs<scalar_t> args{
        x.data_ptr<scalar_t>(), centroids.data_ptr<scalar_t>(), nullptr, nullptr, M, d, k, total,
        other.data_ptr<int64_t>(), nullptr, g.data_ptr<double>(), coeff.data_ptr<double>(),
        grad_x.data_ptr<scalar_t>(), grad_centroids != nullptr ? grad_centroids->data_ptr<scalar_t>() : nullptr};
    Backend::template launch<kernels::InterBackwardKernel<scalar_t>>({P, 1}, 0, args);
  });
}

// ---- the ops --------------------------------------------------------------------------------
struct InterInputs {
  at::Tensor x, centroids, labels;
};

inline InterInputs prepare_inter(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& labels) {
  const at::ScalarType compute = check_inter_inputs(x, centroids, labels);
  return {x.to(compute).contiguous(), centroids.to(compute).contiguous(), labels.contiguous()};
}

template <class Backend>
at::Tensor inter_cluster_distance_op(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& labels) {
  const InterInputs in = prepare_inter(x, centroids, labels);
  const typename Backend::Guard guard(x.device());
  const int64_t total = in.x.size(0) * in.x.size(1);
  return std::get<0>(inter_forward<Backend>(in.x, in.centroids, in.labels, total)).to(in.x.scalar_type());
}

template <class Backend>
std::tuple<at::Tensor, at::Tensor> inter_cluster_distance_backward_op(const at::Tensor& grad, const at::Tensor& x,
                                                                      const at::Tensor& centroids,
                                                                      const at::Tensor& labels) {
  const InterInputs in = prepare_inter(x, centroids, labels);
  const typename Backend::Guard guard(x.device());
  const int64_t total = in.x.size(0) * in.x.size(1);
  const auto [mean, other] = inter_forward<Backend>(in.x, in.centroids, in.labels, total);
  at::Tensor grad_x = at::zeros_like(in.x), grad_c = at::zeros_like(in.centroids);
  inter_backward<Backend>(in.x, in.centroids, other, total, grad, grad_x, &grad_c);
  // a problem with a bad label (NaN mean) has no gradient to give: NaN, as its value
  const at::Tensor bad = at::isnan(mean).view({-1, 1, 1});
  grad_x = at::where(bad, std::numeric_limits<double>::quiet_NaN(), grad_x);
  grad_c = at::where(bad, std::numeric_limits<double>::quiet_NaN(), grad_c);
  return {grad_x.to(x.scalar_type()), grad_c.to(centroids.scalar_type())};
}

}  // namespace device_ops
}  // namespace sdd
