// The whole metric on the CPU (SPEC steps 1-7) and its backward pass.
//
// dse_forward returns, besides the five numbers, the constants of the forward pass that the
// backward needs: labels, centroids, nearest-other indices and the patch permutation. Both
// passes are one helper per component (intra_image, intra_batch, inter, dim), called in a fixed
// order: the backward helpers add into one gradient, so the order fixes its rounding.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "../inputs/features.h"
#include "kernels.h"
#include "tensor_utils.h"

namespace sdd {
namespace cpu {
namespace {

using DseForward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Normalised, rescaled features and the scale s (SPEC steps 1-2).
struct Prepared {
  ScaledFeatures scaled;  // x [B, N, d] compute dtype, contiguous, and its power-of-two factor
  double scale;           // s
  bool collapsed;
};

Prepared prepare_features(const at::Tensor& feats, bool normalize) {
  ScaledFeatures scaled = scaled_features(feats, normalize);
  const at::Tensor flat = scaled.x.view({-1, scaled.x.size(2)}).to(at::kDouble);
  const double scale = at::linalg_vector_norm(flat - flat.mean(0, /*keepdim=*/true), 2, {-1}).mean().item<double>();
  const double mean_norm = at::linalg_vector_norm(flat, 2, {-1}).mean().item<double>();
  return {std::move(scaled), scale, scale <= kCollapseFraction * mean_norm};
}

int64_t valid_clusters(const int64_t* labels, int64_t M, int64_t k, std::vector<int64_t>& counts) {
  counts.assign(k, 0);
  for (int64_t i = 0; i < M; ++i) ++counts[labels[i]];
  int64_t valid = 0;
  for (int64_t c = 0; c < k; ++c) valid += counts[c] >= 2;
  return valid;
}

// Y[n, b] = x[b, perm[b, n]]: [N, B, d].
at::Tensor permuted_rows(const at::Tensor& x, const at::Tensor& perm) {
  const at::Tensor images = at::arange(x.size(0), perm.options()).unsqueeze(1);
  return x.index({images, perm}).transpose(0, 1).contiguous();
}

// Row p of labels [P, L] (contiguous) for every problem p: the per-problem routines take pointers.
std::vector<const int64_t*> label_rows(const at::Tensor& labels, int64_t rows) {
  std::vector<const int64_t*> out(rows);
  for (int64_t p = 0; p < rows; ++p) out[p] = labels.data_ptr<int64_t>() + p * labels.size(1);
  return out;
}

// Every image of x [B, N, d] as a view [N, d].
std::vector<at::Tensor> image_views(const at::Tensor& x) {
  std::vector<at::Tensor> images(x.size(0));
  for (int64_t b = 0; b < x.size(0); ++b) images[b] = x.select(0, b);
  return images;
}

// Every group of images of x [B, N, d] (contiguous) as a view [M_g, d], M_g = group_images(g) * N.
std::vector<at::Tensor> group_views(const at::Tensor& x, const DseShape& shape) {
  const int64_t N = shape.patches;
  const at::Tensor flat = x.view({shape.batch * N, shape.channels});
  std::vector<at::Tensor> groups(shape.groups);
  for (int64_t g = 0; g < shape.groups; ++g) {
    groups[g] = flat.narrow(0, g * shape.group * N, shape.group_images(g) * N);
  }
  return groups;
}

// ---- forward, one helper per component; each returns its raw value (before the division by s) ----

// M_intra_image * s. Images x [B, N, d]; labels [B, N] holds the given labels, else receives each
// image's k-means (local_k clusters). Per image: the mean S over its clusters of >= 2 points; then
// the mean over images.
double intra_image_forward(const at::Tensor& x, const KmeansOptions& local, bool labels_given, at::Tensor& labels) {
  const int64_t B = x.size(0), N = x.size(1), d = x.size(2), k = local.k;
  const std::vector<at::Tensor> images = image_views(x);
  if (!labels_given) {
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      at::Tensor scratch = at::empty({k, d}, x.options());  // centroids [k, d], unused
      for (int64_t b = begin; b < end; ++b) {
        kmeans_problem(images[b], local, common::RandomStream::kKmeansSeeding, b, scratch,
                       labels.data_ptr<int64_t>() + b * N);
      }
    });
  }
  std::vector<double> values(B * k);  // [B, k]
  std::vector<int64_t> counts(B * k);
  cluster_singular_sums(images, label_rows(labels, B), k, values.data(), counts.data());
  double raw = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    double total = 0.0;
    int64_t valid = 0;
    for (int64_t c = b * k; c < (b + 1) * k; ++c) {
      if (counts[c] >= 2) { total += values[c]; ++valid; }
    }
    raw += (valid > 0 ? total / valid : 0.0) / B;
  }
  return raw;
}

// The clustering M_intra_batch and M_inter share. Groups [M_g, d]; labels [G, group * N] holds the
// given labels, else receives each group's k-means (global_k clusters); centroids [G, global_k, d]
// receives the centroids (given labels: their means). Returns per group which centroids may be the
// nearest other one: empty after k-means (all), else those with points.
std::vector<std::vector<bool>> cluster_groups(const std::vector<at::Tensor>& groups, const KmeansOptions& global,
                                              bool labels_given, at::Tensor& labels, at::Tensor& centroids) {
  const int64_t G = static_cast<int64_t>(groups.size()), k = global.k;
  std::vector<std::vector<bool>> usable(G);
  at::parallel_for(0, G, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> counts(k);
    for (int64_t g = begin; g < end; ++g) {
      at::Tensor cg = centroids.select(0, g);
      int64_t* rows = labels.data_ptr<int64_t>() + g * labels.size(1);
      if (labels_given) {
        cluster_means(groups[g], rows, k, cg, counts);
        usable[g].resize(k);
        for (int64_t c = 0; c < k; ++c) usable[g][c] = counts[c] > 0;
      } else {
        kmeans_problem(groups[g], global, common::RandomStream::kGlobalKmeansSeeding, g, cg, rows);
      }
    }
  });
  return usable;
}

// M_intra_batch * s: the mean S over the clusters of >= 2 points of every group (global_k each).
double intra_batch_forward(const std::vector<at::Tensor>& groups, const at::Tensor& labels, int64_t k) {
  const int64_t G = static_cast<int64_t>(groups.size());
  std::vector<double> values(G * k);  // [G, k]
  std::vector<int64_t> counts(G * k);
  cluster_singular_sums(groups, label_rows(labels, G), k, values.data(), counts.data());
  double raw = 0.0;
  int64_t valid = 0;
  for (int64_t c = 0; c < G * k; ++c) {
    if (counts[c] >= 2) { raw += values[c]; ++valid; }
  }
  return valid > 0 ? raw / valid : 0.0;
}

// M_inter * s: per group, the mean distance of each point to the nearest usable centroid other
// than its own (centroids [G, k, d]), written to other [G, group * N] (-1: none); then the mean
// over groups.
double inter_forward(const std::vector<at::Tensor>& groups, const at::Tensor& centroids, const at::Tensor& labels,
                     const std::vector<std::vector<bool>>& usable, at::Tensor& other) {
  const int64_t G = static_cast<int64_t>(groups.size());
  std::vector<double> group_inter(G);
  at::parallel_for(0, G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      group_inter[g] = nearest_other_centroid(groups[g], centroids.select(0, g),
                                              labels.data_ptr<int64_t>() + g * labels.size(1), usable[g],
                                              other.data_ptr<int64_t>() + g * other.size(1));
    }
  });
  double raw = 0.0;
  for (int64_t g = 0; g < G; ++g) raw += group_inter[g] / G;
  return raw;
}

// M_dim (scale-free): the mean effective rank of the N matrices Y[n] [B, d] of permuted patches,
// Y[n, b] = x[b, perm[b, n]] (x [B, N, d], perm [B, N]).
double dim_forward(const at::Tensor& x, const at::Tensor& perm) {
  const int64_t N = x.size(1);
  const at::Tensor y = permuted_rows(x, perm);  // [N, B, d]
  std::vector<double> ranks(N);
  effective_ranks(y, ranks.data());
  double dim = 0.0;
  for (double r : ranks) dim += r / N;
  return dim;
}

DseForward dse_forward_cpu(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group,
                           bool normalize, int64_t iters, double tol, int64_t n_init,
                           c10::string_view seeding, int64_t seed, const c10::optional<at::Tensor>& local_labels,
                           const c10::optional<at::Tensor>& global_labels) {
  const DseOptions options = make_dse_options(local_k, global_k, group, iters, tol, n_init, std::string(seeding), seed);
  const DseShape shape = check_dse_inputs(feats, options, local_labels, global_labels);
  const int64_t B = shape.batch, N = shape.patches, d = shape.channels, G = shape.groups;
  const at::ScalarType compute = compute_dtype(feats);
  const at::TensorOptions long_opts = feats.options().dtype(at::kLong);

  at::Tensor local_out = local_labels.has_value() ? local_labels->contiguous().clone() : at::zeros({B, N}, long_opts);
  at::Tensor global_out = global_labels.has_value() ? global_labels->contiguous().clone()
                                                    : at::full({G, group * N}, -1, long_opts);
  if (!global_labels.has_value()) {  // 0 where k-means does not run (collapse, NaN), -1 = padding
    for (int64_t g = 0; g < G; ++g) global_out.select(0, g).narrow(0, 0, shape.group_images(g) * N).fill_(0);
  }
  at::Tensor centroids = at::zeros({G, global_k, d}, feats.options().dtype(compute));
  at::Tensor other = at::full({G, group * N}, -1, long_opts);
  at::Tensor perm = at::empty({B, N}, long_opts);
  patch_permutation(seed, B, N, perm.data_ptr<int64_t>());

  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (!at::isfinite(feats).all().item<bool>()) {
    return {tensor_from({nan, nan, nan, nan, nan}, centroids.options()), local_out, global_out, centroids.fill_(nan),
            other, perm};
  }
  const Prepared prep = prepare_features(feats, normalize);
  const at::Tensor& x = prep.scaled.x;  // [B, N, d]
  double inter_raw = 0.0, intra_image_raw = 0.0, intra_batch_raw = 0.0;
  if (!prep.collapsed) {  // collapsed: the class-relevance terms are 0
    intra_image_raw = intra_image_forward(x, options.local, local_labels.has_value(), local_out);
    const std::vector<at::Tensor> groups = group_views(x, shape);
    const std::vector<std::vector<bool>> usable =
        cluster_groups(groups, options.global, global_labels.has_value(), global_out, centroids);
    intra_batch_raw = intra_batch_forward(groups, global_out, global_k);
    inter_raw = inter_forward(groups, centroids, global_out, usable, other);
  }
  const double dim = dim_forward(x, perm);

  const double s = prep.collapsed ? 1.0 : prep.scale;
  const double inter = inter_raw / s, intra_image = intra_image_raw / s, intra_batch = intra_batch_raw / s;
  const std::vector<double> values = {inter + dim - (intra_batch + intra_image) / 2.0, inter, intra_image,
                                      intra_batch, dim};
  return {tensor_from(values, centroids.options()), local_out, global_out, centroids, other, perm};
}

// ---- backward, one helper per component; each adds its part of d loss / d x to gx [B, N, d] ----
// g_* = d loss / d M_* (from the five gradients), s the scale: raw components are M_* * s.

// M_intra_image = mean_b mean_{c valid in b} S(c) / s: every valid cluster of image b gets the
// weight g_image / (s B valid_b). labels [B, N].
void intra_image_backward(const at::Tensor& x, const at::Tensor& labels, int64_t k, double g_image, double s,
                          at::Tensor& gx) {
  const int64_t B = x.size(0), N = x.size(1);
  std::vector<at::Tensor> image_grads = image_views(gx);
  const std::vector<const int64_t*> rows = label_rows(labels, B);
  std::vector<double> weights(B * k);  // [B, k]
  std::vector<int64_t> counts;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t valid = valid_clusters(rows[b], N, k, counts);
    for (int64_t c = 0; c < k; ++c) weights[b * k + c] = counts[c] >= 2 ? g_image / (s * B * valid) : 0.0;
  }
  cluster_singular_sums_backward(image_views(x), rows, k, weights.data(), image_grads);
}

// M_intra_batch = mean over the valid clusters of every group of S(c) / s: one weight,
// g_batch / (s valid). Groups and their gradients [M_g, d], labels [G, group * N].
void intra_batch_backward(const std::vector<at::Tensor>& groups, const at::Tensor& labels, int64_t k,
                          double g_batch, double s, std::vector<at::Tensor>& group_grads) {
  const int64_t G = static_cast<int64_t>(groups.size());
  const std::vector<const int64_t*> rows = label_rows(labels, G);
  std::vector<int64_t> counts;
  int64_t valid = 0;
  for (int64_t g = 0; g < G; ++g) valid += valid_clusters(rows[g], groups[g].size(0), k, counts);
  const std::vector<double> weights(G * k, valid > 0 ? g_batch / (s * valid) : 0.0);
  cluster_singular_sums_backward(groups, rows, k, weights.data(), group_grads);
}

// M_inter = mean_g mean_i ||x_i - centroid[other_i]|| / s, with the centroids [G, k, d] and the
// choices other [G, group * N] held constant.
void inter_backward(const std::vector<at::Tensor>& groups, const at::Tensor& centroids, const at::Tensor& other,
                    double g_inter, double s, std::vector<at::Tensor>& group_grads) {
  const int64_t G = static_cast<int64_t>(groups.size());
  at::parallel_for(0, G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      nearest_other_centroid_backward(groups[g], centroids.select(0, g), other.data_ptr<int64_t>() + g * other.size(1),
                                      g_inter / (s * G), group_grads[g], nullptr);
    }
  });
}

// Through s = mean_i ||x_i - mu|| of the three class-relevance terms (each raw / s): with u_i the
// unit vector of x_i - mu, d s / d x_i = (u_i - mean_j u_j) / (B N). x, gx [B, N, d]; values the
// forward's five numbers.
void scale_backward(const at::Tensor& x, const double* values, double g_inter, double g_image, double g_batch,
                    double s, at::Tensor& gx) {
  const int64_t BN = x.size(0) * x.size(1), d = x.size(2);
  const at::Tensor flat = x.view({BN, d});
  const double coeff = -(g_inter * values[1] + g_image * values[2] + g_batch * values[3]) / s;
  const at::Tensor centered = flat - flat.mean(0, true);
  const at::Tensor norms = at::linalg_vector_norm(centered, 2, {-1}, true);
  const at::Tensor unit = at::where(norms > 0, centered / at::clamp_min(norms, kNormEps), at::zeros_like(centered));
  gx.view({BN, d}).add_((unit - unit.mean(0, true)) * (coeff / static_cast<double>(BN)));
}

// M_dim = mean_n erank(Y[n]): every permuted matrix's gradient [B, d] scattered back to its
// patches through perm [B, N].
void dim_backward(const at::Tensor& x, const at::Tensor& perm, double g_dim, at::Tensor& gx) {
  const int64_t B = x.size(0), N = x.size(1);
  const at::Tensor y = permuted_rows(x, perm);  // [N, B, d]
  at::Tensor gy = at::zeros_like(y);
  const std::vector<double> rank_grads(N, g_dim / N);
  effective_ranks_backward(y, rank_grads.data(), gy);
  const at::Tensor images = at::arange(B, perm.options()).unsqueeze(1);
  gx.index_put_({images, perm}, gy.transpose(0, 1), /*accumulate=*/true);
}

at::Tensor dse_backward_cpu(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                            const at::Tensor& local_labels, const at::Tensor& global_labels,
                            const at::Tensor& centroids, const at::Tensor& other, const at::Tensor& perm,
                            int64_t local_k, int64_t global_k, int64_t group, bool normalize) {
  const DseShape shape = check_dse_backward_inputs(grad, values, feats, local_labels, global_labels, centroids, other,
                                                   perm, local_k, global_k, group);
  const at::Tensor g5 = grad.to(at::kDouble).contiguous(), v5 = values.to(at::kDouble).contiguous();
  const double* gv = g5.data_ptr<double>();
  const double* vv = v5.data_ptr<double>();
  if (!at::isfinite(v5).all().item<bool>() || !at::isfinite(g5).all().item<bool>()) {
    return at::full_like(feats, std::numeric_limits<double>::quiet_NaN());
  }
  const Prepared prep = prepare_features(feats, normalize);
  const at::Tensor& x = prep.scaled.x;  // [B, N, d]
  at::Tensor gx = at::zeros_like(x);    // d loss / d x
  // dse = inter + dim - (intra_batch + intra_image) / 2
  const double g_inter = gv[0] + gv[1], g_image = gv[2] - gv[0] / 2, g_batch = gv[3] - gv[0] / 2,
               g_dim = gv[4] + gv[0];

  if (!prep.collapsed) {  // collapsed: the class-relevance terms are constant 0
    const double s = prep.scale;
    intra_image_backward(x, local_labels.contiguous(), local_k, g_image, s, gx);
    const std::vector<at::Tensor> groups = group_views(x, shape);
    std::vector<at::Tensor> group_grads = group_views(gx, shape);
    intra_batch_backward(groups, global_labels.contiguous(), global_k, g_batch, s, group_grads);
    inter_backward(groups, centroids.to(x.scalar_type()).contiguous(), other.contiguous(), g_inter, s, group_grads);
    scale_backward(x, vv, g_inter, g_image, g_batch, s, gx);
  }
  dim_backward(x, perm.contiguous(), g_dim, gx);

  gx = unscale_gradient(gx, prep.scaled, feats, normalize);  // through the rescaling and the normalisation
  return gx.to(feats.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("dse_forward", &dse_forward_cpu);
  m.impl("dse_backward", &dse_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
