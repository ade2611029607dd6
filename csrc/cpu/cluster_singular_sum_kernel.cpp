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
#include "tensor_utils.h"

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
  at::Tensor order() const {  // [M]: point indices, cluster by cluster
    return at::from_blob(const_cast<int64_t*>(members.data()), {static_cast<int64_t>(members.size())}, at::kLong);
  }
};

// Subtracts each cluster's mean from its rows of `rows` (float64 [M, d], cluster by cluster).
void center_clusters(at::Tensor& rows, const ClusterMembers& members) {
  const int64_t d = rows.size(1);
  double* data = rows.data_ptr<double>();
  std::vector<double> mean(d);
  for (size_t c = 0; c + 1 < members.offsets.size(); ++c) {
    const int64_t begin = members.offsets[c], end = members.offsets[c + 1];
    if (end == begin) continue;
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < d; ++j) mean[j] += data[i * d + j];
    }
    for (int64_t j = 0; j < d; ++j) mean[j] /= static_cast<double>(end - begin);
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < d; ++j) data[i * d + j] -= mean[j];
    }
  }
}

// The centered clusters (>= 2 points) of every problem, as the matrices to decompose. Each
// problem's points are gathered once in cluster order (float64: centering in fp32 would leave
// a rounding direction of ~1e-7 * ||mean||, which the fp64 spectrum reads as a singular
// value); every cluster's matrix is a row range of that buffer.
struct CenteredClusters {
  std::vector<ClusterMembers> members;  // per problem
  std::vector<at::Tensor> sorted;       // per problem: [M, d] float64, cluster by cluster, centered
  std::vector<at::Tensor> mats;         // [n, d] row ranges of `sorted`
  std::vector<int64_t> problem, cluster;

  CenteredClusters(const std::vector<at::Tensor>& xs, const std::vector<const int64_t*>& labels, int64_t k,
                   const double* grad_values = nullptr) {
    const int64_t P = static_cast<int64_t>(xs.size());
    members.reserve(P);
    for (int64_t p = 0; p < P; ++p) members.emplace_back(labels[p], xs[p].size(0), k);
    sorted.resize(P);
    at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {  // gather + center: per problem
      for (int64_t p = begin; p < end; ++p) {
        sorted[p] = xs[p].index_select(0, members[p].order()).to(at::kDouble);
        center_clusters(sorted[p], members[p]);
      }
    });
    for (int64_t p = 0; p < P; ++p) {
      for (int64_t c = 0; c < k; ++c) {
        if (members[p].count(c) < 2 || (grad_values != nullptr && grad_values[p * k + c] == 0.0)) continue;
        problem.push_back(p);
        cluster.push_back(c);
        mats.push_back(rows_of(sorted[p], mats.size()));
      }
    }
  }

  // Matrix i's row range of a per-problem buffer laid out like `sorted` ([M, d], cluster by cluster).
  at::Tensor rows_of(const at::Tensor& buffer, size_t i) const {
    const ClusterMembers& m = members[problem[i]];
    return buffer.narrow(0, m.offsets[cluster[i]], m.count(cluster[i]));
  }
};

}  // namespace

void cluster_singular_sums(const std::vector<at::Tensor>& xs, const std::vector<const int64_t*>& labels,
                           int64_t k, double* values, int64_t* counts) {
  const CenteredClusters clusters(xs, labels, k);
  for (size_t p = 0; p < xs.size(); ++p) {
    for (int64_t c = 0; c < k; ++c) {
      counts[p * k + c] = clusters.members[p].count(c);
      values[p * k + c] = 0.0;
    }
  }
  const std::vector<at::Tensor> spectra = small_side_eigenvalues(clusters.mats);
  for (size_t i = 0; i < spectra.size(); ++i) {
    const at::Tensor& eig = spectra[i];
    const int64_t n = clusters.mats[i].size(0), d = clusters.mats[i].size(1);
    values[clusters.problem[i] * k + clusters.cluster[i]] =
        common::sum_singular_values(eig.data_ptr<double>(), eig.numel()) / common::singular_sum_scale(n, d);
  }
}

void cluster_singular_sums_backward(const std::vector<at::Tensor>& xs, const std::vector<const int64_t*>& labels,
                                    int64_t k, const double* grad_values, std::vector<at::Tensor>& grad_xs) {
  const CenteredClusters clusters(xs, labels, k, grad_values);
  std::vector<at::Tensor> sorted_grads, grads;  // per problem [M, d] float64; per cluster its row range
  for (const at::Tensor& rows : clusters.sorted) sorted_grads.push_back(at::zeros_like(rows));
  for (size_t i = 0; i < clusters.mats.size(); ++i) {
    grads.push_back(clusters.rows_of(sorted_grads[clusters.problem[i]], i));
  }
  add_spectral_gradients(
      clusters.mats,
      [&](int64_t i, const at::Tensor& eigenvalues, std::vector<double>& weights, double& scale) {
        weights.resize(eigenvalues.numel());
        common::singular_sum_backward_weights(eigenvalues.data_ptr<double>(), weights.size(), weights.data());
        const at::Tensor& a = clusters.mats[i];
        scale = grad_values[clusters.problem[i] * k + clusters.cluster[i]] /
                common::singular_sum_scale(a.size(0), a.size(1));
      },
      grads);
  for (size_t p = 0; p < xs.size(); ++p) {
    // Through the centering: project out each cluster's mean (also removes rounding along 1).
    center_clusters(sorted_grads[p], clusters.members[p]);
    grad_xs[p].index_add_(0, clusters.members[p].order(), sorted_grads[p].to(grad_xs[p].scalar_type()));
  }
}

// ---- the ops -----------------------------------------------------------------------------
namespace {

std::tuple<at::Tensor, at::Tensor> cluster_singular_sum_cpu(const at::Tensor& x, const at::Tensor& labels,
                                                            int64_t k) {
  check_cluster_inputs(x, labels, k);
  const int64_t P = x.size(0), M = x.size(1);
  const at::Tensor xc = compute_copy(x);
  const at::Tensor lc = labels.contiguous();
  std::vector<double> values(P * k);
  at::Tensor counts = at::empty({P, k}, lc.options());
  std::vector<at::Tensor> xs;
  std::vector<const int64_t*> label_ptrs;
  for (int64_t p = 0; p < P; ++p) {
    xs.push_back(xc.select(0, p));
    label_ptrs.push_back(lc.data_ptr<int64_t>() + p * M);
  }
  cluster_singular_sums(xs, label_ptrs, k, values.data(), counts.data_ptr<int64_t>());
  return {tensor_from(values, xc.options()).view({P, k}), counts};
}

at::Tensor cluster_singular_sum_backward_cpu(const at::Tensor& grad_values, const at::Tensor& x,
                                             const at::Tensor& labels, int64_t k) {
  check_cluster_inputs(x, labels, k);
  const int64_t P = x.size(0), M = x.size(1);
  const at::Tensor xc = compute_copy(x);
  const at::Tensor lc = labels.contiguous();
  const at::Tensor gv = grad_values.to(at::kDouble).contiguous();
  at::Tensor grad_x = at::zeros_like(xc);
  std::vector<at::Tensor> xs, grads;
  std::vector<const int64_t*> label_ptrs;
  for (int64_t p = 0; p < P; ++p) {
    xs.push_back(xc.select(0, p));
    grads.push_back(grad_x.select(0, p));
    label_ptrs.push_back(lc.data_ptr<int64_t>() + p * M);
  }
  cluster_singular_sums_backward(xs, label_ptrs, k, gv.data_ptr<double>(), grads);
  return grad_x.to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("cluster_singular_sum", &cluster_singular_sum_cpu);
  m.impl("cluster_singular_sum_backward", &cluster_singular_sum_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
