// k-means on the CPU: greedy / D^2 / D k-means++ seeding from Philox draws, then Lloyd
// iterations with early stop. One problem per task; distances go through BLAS
// (||x||^2 - 2 x.c + ||c||^2), exact differences are used for reported quantities.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../common/philox.h"
#include "kernels.h"
#include "tensor_utils.h"

namespace sdd {
namespace cpu {
namespace {

template <typename scalar_t>
double squared_distance(const scalar_t* a, const scalar_t* b, int64_t d) {
  double total = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    const double diff = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    total += diff * diff;
  }
  return total;
}

// First index whose cumulative weight exceeds `target`; never a zero-weight point unless all
// weights are zero (or not finite), then the last index. Always terminates.
int64_t sample_index(const std::vector<double>& cumulative, double target) {
  const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), target);
  if (it == cumulative.end()) return static_cast<int64_t>(cumulative.size()) - 1;
  return static_cast<int64_t>(it - cumulative.begin());
}

template <typename scalar_t>
class KmeansSolver {
 public:
  KmeansSolver(const at::Tensor& x, const KmeansOptions& options, common::RandomStream stream,
               int64_t problem)
      : x_(x), opt_(options), stream_(stream), problem_(problem), M_(x.size(0)), d_(x.size(1)),
        data_(x.data_ptr<scalar_t>()), x_norms_(squared_norms(data_, M_, d_)) {
    double squares = 0.0;
    for (double norm : x_norms_) squares += norm;
    threshold_ = opt_.tol * std::sqrt(squares / static_cast<double>(M_));  // tol x RMS point norm (SPEC)
  }

  // One seeding + Lloyd run; writes centroids [k, d] and labels [M]; returns the inertia.
  double run(int64_t init, at::Tensor& centroids, int64_t* labels) {
    seed_centroids(init, centroids);
    scalar_t* c = centroids.data_ptr<scalar_t>();
    const int64_t k = opt_.k;
    std::vector<double> sums(k * d_);
    std::vector<int64_t> counts(k);
    for (int64_t it = 0; it < opt_.iters; ++it) {
      assign(centroids, labels);
      std::fill(sums.begin(), sums.end(), 0.0);
      std::fill(counts.begin(), counts.end(), 0);
      for (int64_t i = 0; i < M_; ++i) {
        double* s = &sums[labels[i] * d_];
        const scalar_t* xi = data_ + i * d_;
        for (int64_t j = 0; j < d_; ++j) s[j] += xi[j];
        ++counts[labels[i]];
      }
      double shift = 0.0;
      for (int64_t cl = 0; cl < k; ++cl) {
        if (counts[cl] == 0) continue;  // an empty cluster keeps its centroid
        for (int64_t j = 0; j < d_; ++j) {
          const scalar_t updated = static_cast<scalar_t>(sums[cl * d_ + j] / counts[cl]);
          const double diff = static_cast<double>(updated) - c[cl * d_ + j];
          shift += diff * diff;
          c[cl * d_ + j] = updated;
        }
      }
      if (std::sqrt(shift) < threshold_) break;
    }
    assign(centroids, labels);
    double inertia = 0.0;
    for (int64_t i = 0; i < M_; ++i) inertia += squared_distance(data_ + i * d_, c + labels[i] * d_, d_);
    return inertia;
  }

 private:
  // labels[i] = argmin_c ||c||^2 - 2 x_i.c (ties: lowest index).
  void assign(const at::Tensor& centroids, int64_t* labels) {
    const int64_t k = opt_.k;
    const std::vector<double> c_norms = squared_norms(centroids.data_ptr<scalar_t>(), k, d_);
    const at::Tensor dots = at::mm(x_, centroids.t());  // [M, k]
    const scalar_t* dot = dots.data_ptr<scalar_t>();
    for (int64_t i = 0; i < M_; ++i) {
      int64_t best = 0;
      double best_score = std::numeric_limits<double>::infinity();
      for (int64_t cl = 0; cl < k; ++cl) {
        const double score = c_norms[cl] - 2.0 * static_cast<double>(dot[i * k + cl]);
        if (score < best_score) { best_score = score; best = cl; }
      }
      labels[i] = best;
    }
  }

  double weight(double squared) const {
    return opt_.seeding == Seeding::kD ? std::sqrt(squared) : squared;
  }

  double draw(int64_t init, int64_t step, int64_t candidate) const {
    const int64_t counter = ((init * opt_.k + step) * 16) + candidate;
    return common::random_unit(opt_.seed, stream_, problem_, counter);
  }

  // k-means++ seeding (SPEC): greedy keeps the best of 2 + floor(ln k) D^2 candidates.
  void seed_centroids(int64_t init, at::Tensor& centroids) {
    const int64_t k = opt_.k;
    scalar_t* c = centroids.data_ptr<scalar_t>();
    const int64_t first = std::min<int64_t>(M_ - 1, static_cast<int64_t>(draw(init, 0, 0) * M_));
    std::copy(data_ + first * d_, data_ + (first + 1) * d_, c);
    std::vector<double> closest(M_);
    for (int64_t i = 0; i < M_; ++i) closest[i] = squared_distance(data_ + i * d_, c, d_);

    const int64_t n_candidates =
        opt_.seeding == Seeding::kGreedy ? 2 + static_cast<int64_t>(std::log(static_cast<double>(k))) : 1;
    std::vector<double> cumulative(M_), trial(M_), best_closest(M_);
    std::vector<int64_t> candidates(n_candidates);
    at::Tensor candidate_rows = at::empty({n_candidates, d_}, x_.options());
    scalar_t* rows = candidate_rows.data_ptr<scalar_t>();
    for (int64_t step = 1; step < k; ++step) {
      double running = 0.0;
      for (int64_t i = 0; i < M_; ++i) cumulative[i] = (running += weight(closest[i]));
      for (int64_t j = 0; j < n_candidates; ++j) {
        candidates[j] = sample_index(cumulative, draw(init, step, j) * running);
        std::copy(data_ + candidates[j] * d_, data_ + (candidates[j] + 1) * d_, rows + j * d_);
      }
      const at::Tensor dots = at::mm(x_, candidate_rows.t());  // [M, n_candidates]
      const scalar_t* dot = dots.data_ptr<scalar_t>();
      const std::vector<double> cand_norms = squared_norms(rows, n_candidates, d_);
      double best_potential = std::numeric_limits<double>::infinity();
      int64_t best = 0;
      for (int64_t j = 0; j < n_candidates; ++j) {
        double potential = 0.0;
        for (int64_t i = 0; i < M_; ++i) {
          const double sq = std::max(0.0, x_norms_[i] - 2.0 * dot[i * n_candidates + j] + cand_norms[j]);
          trial[i] = std::min(closest[i], sq);
          potential += weight(trial[i]);
        }
        if (j == 0 || potential < best_potential) {
          best_potential = potential;
          best = j;
          best_closest.swap(trial);
        }
      }
      closest.swap(best_closest);
      std::copy(rows + best * d_, rows + (best + 1) * d_, c + step * d_);
    }
  }

  const at::Tensor& x_;
  const KmeansOptions& opt_;
  common::RandomStream stream_;
  int64_t problem_, M_, d_;
  const scalar_t* data_;
  std::vector<double> x_norms_;
  double threshold_;  // early stop when the centroid shift falls under it
};

}  // namespace

double kmeans_problem(const at::Tensor& x, const KmeansOptions& options,
                      common::RandomStream stream, int64_t problem, at::Tensor& centroids,
                      int64_t* labels) {
  double best_inertia = 0.0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::kmeans", [&] {
    KmeansSolver<scalar_t> solver(x, options, stream, problem);
    if (options.n_init == 1) {
      best_inertia = solver.run(0, centroids, labels);
      return;
    }
    at::Tensor trial_centroids = at::empty_like(centroids);
    std::vector<int64_t> trial_labels(x.size(0));
    for (int64_t init = 0; init < options.n_init; ++init) {
      const double inertia = solver.run(init, trial_centroids, trial_labels.data());
      if (init == 0 || inertia < best_inertia) {  // ties: the earlier run
        best_inertia = inertia;
        centroids.copy_(trial_centroids);
        std::copy(trial_labels.begin(), trial_labels.end(), labels);
      }
    }
  });
  return best_inertia;
}

void cluster_means(const at::Tensor& x, const int64_t* labels, int64_t k, at::Tensor& centroids,
                   std::vector<int64_t>& counts) {
  const int64_t M = x.size(0), d = x.size(1);
  counts.assign(k, 0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::cluster_means", [&] {
    std::vector<double> sums(k * d, 0.0);
    const scalar_t* data = x.data_ptr<scalar_t>();
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < d; ++j) sums[labels[i] * d + j] += data[i * d + j];
      ++counts[labels[i]];
    }
    scalar_t* c = centroids.data_ptr<scalar_t>();
    for (int64_t cl = 0; cl < k; ++cl) {
      for (int64_t j = 0; j < d; ++j) {
        c[cl * d + j] = counts[cl] > 0 ? static_cast<scalar_t>(sums[cl * d + j] / counts[cl]) : scalar_t(0);
      }
    }
  });
}

// ---- the op ------------------------------------------------------------------------------
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> kmeans_cpu(const at::Tensor& x, int64_t k,
                                                          int64_t iters, double tol, int64_t n_init,
                                                          c10::string_view seeding, int64_t seed) {
  const KmeansOptions options = check_kmeans_inputs(x, k, iters, tol, n_init, std::string(seeding), seed);
  const int64_t P = x.size(0), M = x.size(1), d = x.size(2);
  const at::Tensor xc = compute_copy(x);
  at::Tensor centroids = at::empty({P, k, d}, xc.options());
  at::Tensor labels = at::empty({P, M}, xc.options().dtype(at::kLong));
  int64_t* label_data = labels.data_ptr<int64_t>();
  std::vector<double> inertias(P);
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      at::Tensor c = centroids.select(0, p);
      inertias[p] = kmeans_problem(xc.select(0, p), options, common::RandomStream::kKmeansSeeding,
                                   p, c, label_data + p * M);
    }
  });
  return {centroids, labels, tensor_from(inertias, xc.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) { m.impl("kmeans", &kmeans_cpu); }

}  // namespace cpu
}  // namespace sdd
