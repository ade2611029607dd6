// Mean distance of each point to the nearest centroid other than its own (M_inter's core).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels.h"
#include "row_products.h"  // squared_distance, product error bounds
#include "tensor_utils.h"

namespace sdd {
namespace cpu {

void nearest_others_from_products(const at::Tensor& x, const double* x_norms, const at::Tensor& centroids,
                                  const int64_t* labels, const std::vector<bool>& usable, const int64_t* points,
                                  int64_t n, const at::Tensor& dots, int64_t* other, double* distance) {
  const int64_t d = x.size(1), k = centroids.size(0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::nearest_others_from_products", [&] {
    const scalar_t* xd = x.data_ptr<scalar_t>();
    const scalar_t* cd = centroids.data_ptr<scalar_t>();
    const std::vector<double> c_norms = squared_norms(cd, k, d);
    double c_max = 0.0;  // the largest centroid norm, for the products' error bound
    for (double norm : c_norms) c_max = std::max(c_max, std::sqrt(norm));
    const double gamma = dot_product_error(d, std::numeric_limits<scalar_t>::epsilon() / 2.0);
    const scalar_t* dot = dots.data_ptr<scalar_t>();
    std::vector<double> score(k);  // ||c||^2 - 2 x.c: the squared distance less ||x||^2, from the product
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = points != nullptr ? points[r] : r;
      auto competes = [&](int64_t c) { return c != labels[i] && (usable.empty() || usable[c]); };
      int64_t best = -1;
      for (int64_t c = 0; c < k; ++c) {
        score[c] = c_norms[c] - 2.0 * static_cast<double>(dot[c * n + r]);
        if (competes(c) && (best < 0 || score[c] < score[best])) best = c;
      }
      other[i] = best;
      distance[i] = 0.0;
      if (best < 0) continue;
      // Every centroid whose score is within twice the error bound of the best may be the nearest:
      // their float64 distances decide (a non-finite row or centroid: the products' pick, NaN).
      const double reach = score[best] + 2.0 * product_error(gamma, x_norms[i], c_max, c_max * c_max);
      double best_sq = squared_distance(xd + i * d, cd + best * d, d);
      for (int64_t c = 0; c < k; ++c) {
        if (c == best || !competes(c) || !(score[c] <= reach)) continue;
        const double sq = squared_distance(xd + i * d, cd + c * d, d);
        if (sq < best_sq || (sq == best_sq && c < other[i])) {
          best_sq = sq;
          other[i] = c;
        }
      }
      distance[i] = std::sqrt(best_sq);
    }
  });
}

double nearest_other_centroid(const at::Tensor& x, const at::Tensor& centroids, const int64_t* labels,
                              const std::vector<bool>& usable, int64_t* other) {
  const int64_t M = x.size(0), k = centroids.size(0);
  std::vector<double> x_norms, distance(M);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::nearest_other_centroid",
                             [&] { x_norms = squared_norms(x.data_ptr<scalar_t>(), M, x.size(1)); });
  at::Tensor dots = at::empty({k, M}, x.options());
  point_dots(centroids, x, nullptr, M, dots);
  nearest_others_from_products(x, x_norms.data(), centroids, labels, usable, nullptr, M, dots, other, distance.data());
  double total = 0.0;
  for (double value : distance) total += value;
  return total / static_cast<double>(M);
}

void nearest_other_centroid_backward(const at::Tensor& x, const at::Tensor& centroids, const int64_t* other,
                                     double grad_mean, at::Tensor& grad_x, at::Tensor* grad_centroids) {
  const int64_t M = x.size(0), d = x.size(1);
  if (grad_mean == 0.0) return;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::nearest_other_centroid_backward", [&] {
    const scalar_t* xd = x.data_ptr<scalar_t>();
    const scalar_t* cd = centroids.data_ptr<scalar_t>();
    scalar_t* gx = grad_x.data_ptr<scalar_t>();
    scalar_t* gc = grad_centroids != nullptr ? grad_centroids->data_ptr<scalar_t>() : nullptr;
    std::vector<double> diff(d);
    for (int64_t i = 0; i < M; ++i) {
      const int64_t c = other[i];
      if (c < 0) continue;
      const double sq = squared_distance(xd + i * d, cd + c * d, d);  // the forward's value
      if (!(sq > 0.0)) continue;  // a point on the centroid: subgradient 0
      for (int64_t j = 0; j < d; ++j) diff[j] = static_cast<double>(xd[i * d + j]) - cd[c * d + j];
      const double coeff = grad_mean / static_cast<double>(M) / std::sqrt(sq);
      for (int64_t j = 0; j < d; ++j) {
        gx[i * d + j] += static_cast<scalar_t>(coeff * diff[j]);
        if (gc != nullptr) gc[c * d + j] -= static_cast<scalar_t>(coeff * diff[j]);
      }
    }
  });
}

// ---- the ops -----------------------------------------------------------------------------
namespace {

struct InterInputs {
  at::Tensor x, centroids, labels;
};

InterInputs prepare(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& labels) {
  const at::ScalarType compute = check_inter_inputs(x, centroids, labels);
  return {x.to(compute).contiguous(), centroids.to(compute).contiguous(), labels.contiguous()};
}

at::Tensor inter_cluster_distance_cpu(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& labels) {
  const InterInputs in = prepare(x, centroids, labels);
  const int64_t P = in.x.size(0), M = in.x.size(1);
  std::vector<double> means(P);
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> other(M);
    for (int64_t p = begin; p < end; ++p) {
      means[p] = nearest_other_centroid(in.x.select(0, p), in.centroids.select(0, p),
                                        in.labels.data_ptr<int64_t>() + p * M, {}, other.data());
    }
  });
  return tensor_from(means, in.x.options());
}

std::tuple<at::Tensor, at::Tensor> inter_cluster_distance_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                                       const at::Tensor& centroids,
                                                                       const at::Tensor& labels) {
  const InterInputs in = prepare(x, centroids, labels);
  const int64_t P = in.x.size(0), M = in.x.size(1);
  const at::Tensor g = grad.to(at::kDouble).contiguous();
  at::Tensor grad_x = at::zeros_like(in.x), grad_c = at::zeros_like(in.centroids);
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> other(M);
    for (int64_t p = begin; p < end; ++p) {
      const at::Tensor xp = in.x.select(0, p), cp = in.centroids.select(0, p);
      nearest_other_centroid(xp, cp, in.labels.data_ptr<int64_t>() + p * M, {}, other.data());
      at::Tensor gx = grad_x.select(0, p), gc = grad_c.select(0, p);
      nearest_other_centroid_backward(xp, cp, other.data(), g.data_ptr<double>()[p], gx, &gc);
    }
  });
  return {grad_x.to(x.scalar_type()), grad_c.to(centroids.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("inter_cluster_distance", &inter_cluster_distance_cpu);
  m.impl("inter_cluster_distance_backward", &inter_cluster_distance_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
