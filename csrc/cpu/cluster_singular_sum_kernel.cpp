// Centered singular sums of labelled clusters, S(X) = sum(sigma(X - mean)) / sqrt(max(n-1, d)),
// from the eigenvalues of the smaller of each cluster's Gram (n x n) or covariance (d x d).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common/spectral.h"
#include "kernels.h"
#include "small_eigh.h"

namespace sdd {
namespace cpu {
namespace {

// Points of each cluster, grouped: members[offsets[c] .. offsets[c + 1]).
struct ClusterMembers {
  std::vector<int64_t> members, offsets;

  ClusterMembers(const int64_t* labels, int64_t M, int64_t k) : members(M), offsets(k + 1, 0) {
    for (int64_t i = 0; i < M; ++i) ++offsets[labels[i] + 1];
    for (int64_t c = 0; c < k; ++c) offsets[c + 1] += offsets[c];
    std::vector<int64_t> next(offsets.begin(), offsets.end() - 1);
    for (int64_t i = 0; i < M; ++i) members[next[labels[i]]++] = i;
  }
  int64_t count(int64_t c) const { return offsets[c + 1] - offsets[c]; }
  at::Tensor index(int64_t c) const {
    return at::from_blob(const_cast<int64_t*>(members.data()) + offsets[c], {count(c)}, at::kLong);
  }
};

at::Tensor centered_rows(const at::Tensor& x, const at::Tensor& index) {
  const at::Tensor rows = x.index_select(0, index);
  return rows - rows.mean(0, /*keepdim=*/true);
}

}  // namespace

void cluster_singular_sums(const at::Tensor& x, const int64_t* labels, int64_t k, double* values,
                           int64_t* counts) {
  const int64_t d = x.size(1);
  const ClusterMembers clusters(labels, x.size(0), k);
  for (int64_t c = 0; c < k; ++c) {
    const int64_t n = clusters.count(c);
    counts[c] = n;
    values[c] = 0.0;
    if (n < 2) continue;
    const SmallSideSpectrum spectrum = small_side_spectrum(centered_rows(x, clusters.index(c)), false);
    values[c] = common::sum_singular_values(spectrum.eigenvalues.data_ptr<double>(), spectrum.eigenvalues.numel(),
                                            spectrum.degenerate_fraction) /
                common::singular_sum_scale(n, d);
  }
}

void cluster_singular_sums_backward(const at::Tensor& x, const int64_t* labels, int64_t k,
                                    const double* grad_values, at::Tensor& grad_x) {
  const int64_t d = x.size(1);
  const ClusterMembers clusters(labels, x.size(0), k);
  std::vector<double> weights;
  for (int64_t c = 0; c < k; ++c) {
    const int64_t n = clusters.count(c);
    if (n < 2 || grad_values[c] == 0.0) continue;
    const at::Tensor index = clusters.index(c);
    const at::Tensor a = centered_rows(x, index);
    const SmallSideSpectrum spectrum = small_side_spectrum(a, true);
    weights.resize(spectrum.eigenvalues.numel());
    common::singular_sum_backward_weights(spectrum.eigenvalues.data_ptr<double>(), weights.size(),
                                          spectrum.degenerate_fraction,
                                          weights.data());
    at::Tensor grad_a = at::zeros_like(a);
    add_spectral_gradient(a, spectrum, weights.data(), grad_values[c] / common::singular_sum_scale(n, d), grad_a);
    // Through the centering: project out the mean (also removes rounding along 1).
    grad_a -= grad_a.mean(0, /*keepdim=*/true);
    grad_x.index_add_(0, index, grad_a);
  }
}

// ---- the ops -----------------------------------------------------------------------------
namespace {

at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

void check_inputs(const at::Tensor& x, const at::Tensor& labels, int64_t k) {
  check_float_tensor(x, "x", 3);
  check_labels_tensor(labels, "labels", {x.size(0), x.size(1)});
  TORCH_CHECK_VALUE(k >= 1, "k must be >= 1; got ", k);
  check_label_range(labels, k, "labels");
}

std::tuple<at::Tensor, at::Tensor> cluster_singular_sum_cpu(const at::Tensor& x, const at::Tensor& labels,
                                                            int64_t k) {
  check_inputs(x, labels, k);
  const int64_t P = x.size(0), M = x.size(1);
  const at::Tensor xc = x.to(compute_type(x)).contiguous();
  const at::Tensor lc = labels.contiguous();
  std::vector<double> values(P * k);
  at::Tensor counts = at::empty({P, k}, lc.options());
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      cluster_singular_sums(xc.select(0, p), lc.data_ptr<int64_t>() + p * M, k, values.data() + p * k,
                            counts.data_ptr<int64_t>() + p * k);
    }
  });
  at::Tensor out = at::empty({P, k}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "sdd::cluster_singular_sum", [&] {
    std::copy(values.begin(), values.end(), out.data_ptr<scalar_t>());
  });
  return {out, counts};
}

at::Tensor cluster_singular_sum_backward_cpu(const at::Tensor& grad_values, const at::Tensor& x,
                                             const at::Tensor& labels, int64_t k) {
  check_inputs(x, labels, k);
  const int64_t P = x.size(0), M = x.size(1);
  const at::Tensor xc = x.to(compute_type(x)).contiguous();
  const at::Tensor lc = labels.contiguous();
  const at::Tensor gv = grad_values.to(at::kDouble).contiguous();
  at::Tensor grad_x = at::zeros_like(xc);
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      at::Tensor g = grad_x.select(0, p);
      cluster_singular_sums_backward(xc.select(0, p), lc.data_ptr<int64_t>() + p * M, k,
                                     gv.data_ptr<double>() + p * k, g);
    }
  });
  return grad_x.to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("cluster_singular_sum", &cluster_singular_sum_cpu);
  m.impl("cluster_singular_sum_backward", &cluster_singular_sum_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
