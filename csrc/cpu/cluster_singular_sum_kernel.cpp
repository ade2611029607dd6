// Centered singular sums of labelled clusters, S(X) = sum(sigma(X - mean)) / sqrt(max(n-1, d)),
// from the eigenvalues of the smaller of each cluster's Gram (n x n) or covariance (d x d)
// (small_eigh.h: every cluster of every problem is one row matrix of one table, one parallel region).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <memory>
#include <vector>

#include "../common/spectral.h"
#include "kernels.h"
#include "small_eigh.h"
#include "tensor_utils.h"

namespace sdd {
namespace cpu {
namespace {

// The clusters of >= 2 points of every problem of every set (those with a non-zero gradient when
// grad_values is given) as row matrices of the sets' one table, and where each matrix's values go: its
// set, and its index p k + c in that set's [P, k] values. Each set's cluster sizes go to its counts
// (when not null).
struct ClusterMatrices {
  RowMatrices mats;
  std::vector<int64_t> set, value_index;

  explicit ClusterMatrices(const std::vector<ClusterSums>& sets, const double* grad_values = nullptr) {
    mats.table = sets.front().problems->table;
    mats.centered = true;
    for (size_t s = 0; s < sets.size(); ++s) {
      const ClusterProblems& problems = *sets[s].problems;
      TORCH_CHECK(problems.table.data_ptr() == mats.table.data_ptr() && problems.table.sizes() == mats.table.sizes(),
                  "cluster_singular_sums: the sets must share one table");
      add_clusters(problems, s, sets[s].counts, grad_values);
    }
  }

 private:
  void add_clusters(const ClusterProblems& problems, int64_t s, int64_t* counts_out, const double* grad_values) {
    const int64_t P = static_cast<int64_t>(problems.first_row.size()), k = problems.k;
    std::vector<int64_t> offsets(k + 1), members;
    for (int64_t p = 0; p < P; ++p) {  // counting sort of the problem's points by label
      const int64_t M = problems.points[p], first = problems.first_row[p];
      const int64_t* labels = problems.labels[p];
      std::fill(offsets.begin(), offsets.end(), 0);
      for (int64_t i = 0; i < M; ++i) ++offsets[labels[i] + 1];
      for (int64_t c = 0; c < k; ++c) offsets[c + 1] += offsets[c];
      members.resize(M);
      std::vector<int64_t> next(offsets.begin(), offsets.end() - 1);
      for (int64_t i = 0; i < M; ++i) members[next[labels[i]]++] = first + i;
      for (int64_t c = 0; c < k; ++c) {
        const int64_t n = offsets[c + 1] - offsets[c];
        if (counts_out != nullptr) counts_out[p * k + c] = n;
        if (n < 2 || (grad_values != nullptr && grad_values[p * k + c] == 0.0)) continue;
        mats.add(members.data() + offsets[c], n);
        set.push_back(s);
        value_index.push_back(p * k + c);
      }
    }
  }
};

}  // namespace

SpectrumJob cluster_singular_sums_job(const std::vector<ClusterSums>& sets, KeptSpectra* keep) {
  const int64_t d = sets.front().problems->table.size(1);
  std::vector<double*> values;
  for (const ClusterSums& set : sets) {
    const int64_t P = static_cast<int64_t>(set.problems->first_row.size()), k = set.problems->k;
    std::fill(set.values, set.values + P * k, 0.0);
    values.push_back(set.values);
  }
  const auto clusters = std::make_shared<const ClusterMatrices>(sets);
  return {std::shared_ptr<const RowMatrices>(clusters, &clusters->mats),
          [clusters, values, d](int64_t i, const double* eig, int64_t m) {
            values[clusters->set[i]][clusters->value_index[i]] =
                common::sum_singular_values(eig, m) / common::singular_sum_scale(clusters->mats.rows(i), d);
          },
          keep};
}

SpectrumJob cluster_singular_sums_job(const ClusterProblems& problems, double* values, int64_t* counts,
                                      KeptSpectra* keep) {
  return cluster_singular_sums_job({ClusterSums{&problems, values, counts}}, keep);
}

void cluster_singular_sums(const ClusterProblems& problems, double* values, int64_t* counts, KeptSpectra* keep) {
  for_each_spectrum({cluster_singular_sums_job(problems, values, counts, keep)});
}

void cluster_singular_sums_backward(const ClusterProblems& problems, const double* grad_values,
                                    at::Tensor& grad_table, const KeptSpectra* kept, double* values) {
  const int64_t P = static_cast<int64_t>(problems.first_row.size()), k = problems.k, d = problems.table.size(1);
  // Kept spectra are laid out over every cluster of >= 2 points: zero-gradient ones are not left out then.
  const ClusterMatrices clusters({ClusterSums{&problems, nullptr, nullptr}}, kept != nullptr ? nullptr : grad_values);
  if (values != nullptr) std::fill(values, values + P * k, 0.0);
  add_spectral_gradients(
      clusters.mats,
      [&](int64_t i, const double* eig, int64_t m, double* weights, double& scale) {
        const int64_t at = clusters.value_index[i];
        const double normaliser = common::singular_sum_scale(clusters.mats.rows(i), d);
        common::singular_sum_backward_weights(eig, m, weights);
        scale = grad_values[at] / normaliser;
        if (values != nullptr) values[at] = common::sum_singular_values(eig, m) / normaliser;
      },
      grad_table, kept);
}

// ---- the ops -----------------------------------------------------------------------------
namespace {

std::tuple<at::Tensor, at::Tensor> cluster_singular_sum_cpu(const at::Tensor& x, const at::Tensor& labels,
                                                            int64_t k) {
  check_cluster_inputs(x, labels, k);
  const int64_t P = x.size(0);
  const at::Tensor xc = compute_copy(x);
  const at::Tensor lc = labels.contiguous();
  std::vector<double> values(P * k);
  at::Tensor counts = at::empty({P, k}, lc.options());
  cluster_singular_sums(ClusterProblems::batched(xc, lc, k), values.data(), counts.data_ptr<int64_t>());
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
  at::Tensor grad_table = grad_x.view({P * M, x.size(2)});
  cluster_singular_sums_backward(ClusterProblems::batched(xc, lc, k), gv.data_ptr<double>(), grad_table);
  return grad_x.to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("cluster_singular_sum", &cluster_singular_sum_cpu);
  m.impl("cluster_singular_sum_backward", &cluster_singular_sum_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
