// Host side of the spectral kernels (csrc/kernels/spectra.h): centered singular sums of
// labelled clusters and effective ranks, forward and backward, for every Backend.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "../kernels/spectra.h"
#include "kmeans.h"

namespace sdd {
namespace device_ops {

// Points of every problem sorted by cluster (ClusterSortKernel's outputs).
struct ClusterLayout {
  at::Tensor counts;          // [P, k] int64
  at::Tensor offsets;         // [P, k + 1]
  at::Tensor order;           // [P, M]
  at::Tensor matrix_offsets;  // [P, k]
  at::Tensor bad;             // [P] int64: 1 when a label lies outside [0, k)
};

// labels [P, M] int64 contiguous; problem p holds min(M, total - p * M) points of d channels.
template <class Backend>
ClusterLayout sort_clusters(const at::Tensor& labels, int64_t total, int64_t k, int64_t d) {
  const int64_t P = labels.size(0), M = labels.size(1);
  const at::TensorOptions opts = labels.options();
  ClusterLayout layout{at::empty({P, k}, opts), at::empty({P, k + 1}, opts), at::empty({P, M}, opts),
                       at::empty({P, k}, opts), at::empty({P}, opts)};
  const at::Tensor cursor = at::empty({P, k}, opts);
  const kernels::ClusterSortArgs args{labels.data_ptr<int64_t>(), M, k, total, d,
                                      layout.counts.data_ptr<int64_t>(), layout.offsets.data_ptr<int64_t>(),
                                      layout.order.data_ptr<int64_t>(), layout.matrix_offsets.data_ptr<int64_t>(),
                                      cursor.data_ptr<int64_t>(), layout.bad.data_ptr<int64_t>()};
  Backend::template launch<kernels::ClusterSortKernel>({P, 1}, kernels::cluster_sort_shared_bytes(), args);
  return layout;
}

// values [P, k] fp64 = S(cluster) (0 below 2 points; NaN for a problem with a bad label).
// x [P, M, d] compute dtype, contiguous. With grad_values [P, k] fp64 given, instead adds
// the gradient to grad_x (x's shape and dtype) and returns an undefined tensor.
template <class Backend>
at::Tensor cluster_spectra(const at::Tensor& x, const ClusterLayout& layout, int64_t k,
                           const at::Tensor& grad_values = at::Tensor(), at::Tensor* grad_x = nullptr) {
  const int64_t P = x.size(0), M = x.size(1), d = x.size(2), m_max = std::min(M, d);
  const bool backward = grad_x != nullptr;
  const at::TensorOptions f64 = x.options().dtype(at::kDouble);
  const at::Tensor rows = at::empty({P, M, d}, f64), grams = at::empty({P, 2 * M * d}, f64);
  const at::Tensor vectors = backward ? at::empty({P, M * d}, f64) : at::Tensor();
  const at::Tensor grad_rows = backward ? at::empty({P, M, d}, f64) : at::Tensor();
  at::Tensor values = backward ? at::Tensor() : at::empty({P, k}, f64);
  const at::Tensor gv = backward ? grad_values.to(at::kDouble).contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::cluster_spectra", [&] {
    const kernels::ClusterSpectraArgs<scalar_t> args{
        x.data_ptr<scalar_t>(), M, d, k, m_max, layout.counts.data_ptr<int64_t>(),
        layout.offsets.data_ptr<int64_t>(), layout.order.data_ptr<int64_t>(),
        layout.matrix_offsets.data_ptr<int64_t>(), rows.data_ptr<double>(), grams.data_ptr<double>(),
        backward ? vectors.data_ptr<double>() : nullptr, backward ? nullptr : values.data_ptr<double>(),
        backward ? gv.data_ptr<double>() : nullptr, backward ? grad_rows.data_ptr<double>() : nullptr,
        backward ? grad_x->data_ptr<scalar_t>() : nullptr};
    const int64_t shared = kernels::spectral_shared_bytes(m_max);
    if (backward) {
      Backend::template launch<kernels::ClusterSpectraKernel<scalar_t, true>>({k, P}, shared, args);
    } else {
      Backend::template launch<kernels::ClusterSpectraKernel<scalar_t, false>>({k, P}, shared, args);
    }
  });
  if (backward) return at::Tensor();
  return at::where(layout.bad.unsqueeze(1) != 0, std::numeric_limits<double>::quiet_NaN(), values);
}

// Effective ranks [Q] fp64 of y [Q, R, d] (compute dtype, contiguous); with grad [Q] given,
// instead returns d / d y of sum(grad * ranks) in y's dtype.
template <class Backend>
at::Tensor effective_ranks(const at::Tensor& y, const at::Tensor& grad = at::Tensor()) {
  const int64_t Q = y.size(0), R = y.size(1), d = y.size(2), m = std::min(R, d);
  const bool backward = grad.defined();
  const at::TensorOptions f64 = y.options().dtype(at::kDouble);
  const at::Tensor grams = at::empty({Q, 2, m, m}, f64);
  const at::Tensor vectors = backward ? at::empty({Q, m, m}, f64) : at::Tensor();
  const at::Tensor grad_rows = backward ? at::empty({Q, R, d}, f64) : at::Tensor();
  const at::Tensor g = backward ? grad.to(at::kDouble).contiguous() : at::Tensor();
  at::Tensor out = backward ? at::empty_like(y) : at::empty({Q}, f64);
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "sdd::effective_rank", [&] {
    const kernels::EffectiveRankArgs<scalar_t> args{
        y.data_ptr<scalar_t>(), R, d, m, grams.data_ptr<double>(), backward ? vectors.data_ptr<double>() : nullptr,
        backward ? nullptr : out.data_ptr<double>(), backward ? g.data_ptr<double>() : nullptr,
        backward ? grad_rows.data_ptr<double>() : nullptr, backward ? out.data_ptr<scalar_t>() : nullptr};
    const int64_t shared = kernels::spectral_shared_bytes(m);
    if (backward) {
      Backend::template launch<kernels::EffectiveRankKernel<scalar_t, true>>({Q, 1}, shared, args);
    } else {
      Backend::template launch<kernels::EffectiveRankKernel<scalar_t, false>>({Q, 1}, shared, args);
    }
  });
  return out;
}

// ---- the ops --------------------------------------------------------------------------------
template <class Backend>
std::tuple<at::Tensor, at::Tensor> cluster_singular_sum_op(const at::Tensor& x, const at::Tensor& labels, int64_t k) {
  check_cluster_inputs(x, labels, k);
  const typename Backend::Guard guard(x.device());
  const at::Tensor xc = compute_copy(x), lc = labels.contiguous();
  const ClusterLayout layout = sort_clusters<Backend>(lc, xc.size(0) * xc.size(1), k, xc.size(2));
  return {cluster_spectra<Backend>(xc, layout, k).to(xc.scalar_type()), layout.counts};
}

template <class Backend>
at::Tensor cluster_singular_sum_backward_op(const at::Tensor& grad_values, const at::Tensor& x,
                                            const at::Tensor& labels, int64_t k) {
  check_cluster_inputs(x, labels, k);
  const typename Backend::Guard guard(x.device());
  const at::Tensor xc = compute_copy(x), lc = labels.contiguous();
  const ClusterLayout layout = sort_clusters<Backend>(lc, xc.size(0) * xc.size(1), k, xc.size(2));
  at::Tensor grad_x = at::zeros_like(xc);
  cluster_spectra<Backend>(xc, layout, k, grad_values, &grad_x);
  // a problem with a bad label has no gradient to give: NaN, as its values
  grad_x = at::where(layout.bad.view({-1, 1, 1}) != 0, std::numeric_limits<double>::quiet_NaN(), grad_x);
  return grad_x.to(x.scalar_type());
}

template <class Backend>
at::Tensor effective_rank_op(const at::Tensor& y) {
  check_effective_rank_input(y);
  const typename Backend::Guard guard(y.device());
  const at::Tensor yc = compute_copy(y);
  return effective_ranks<Backend>(yc).to(yc.scalar_type());
}

template <class Backend>
at::Tensor effective_rank_backward_op(const at::Tensor& grad, const at::Tensor& y) {
  check_effective_rank_input(y);
  const typename Backend::Guard guard(y.device());
  return effective_ranks<Backend>(compute_copy(y), grad).to(y.scalar_type());
}

}  // namespace device_ops
}  // namespace sdd
