// The whole metric on the CPU (SPEC steps 1-7) and its backward pass.
//
// dse_forward returns, besides the five numbers, the constants of the forward pass that the
// backward needs: labels, centroids, nearest-other indices and the patch permutation.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../common/spectral.h"
#include "../ops/features.h"
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

DseForward dse_forward_cpu(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group,
                           bool normalize, int64_t iters, double tol, int64_t n_init,
                           c10::string_view seeding, int64_t seed, const c10::optional<at::Tensor>& local_labels,
                           const c10::optional<at::Tensor>& global_labels) {
  const DseOptions options =
      make_dse_options(local_k, global_k, group, normalize, iters, tol, n_init, std::string(seeding), seed);
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
    return {tensor_from({nan, nan, nan, nan, nan}, centroids.options()), local_out, global_out, centroids.fill_(nan), other, perm};
  }
  const Prepared prep = prepare_features(feats, normalize);
  const at::Tensor& x = prep.scaled.x;
  double inter_raw = 0.0, intra_image_raw = 0.0, intra_batch_raw = 0.0;

  if (!prep.collapsed) {
    // ---- M_intra_image: k-means with local_k on each image ----
    std::vector<at::Tensor> images(B);
    std::vector<const int64_t*> image_labels(B);
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      at::Tensor scratch = at::empty({local_k, d}, x.options());
      for (int64_t b = begin; b < end; ++b) {
        images[b] = x.select(0, b);
        int64_t* labels = local_out.data_ptr<int64_t>() + b * N;
        image_labels[b] = labels;
        if (!local_labels.has_value()) {
          kmeans_problem(images[b], options.local, common::RandomStream::kKmeansSeeding, b, scratch, labels);
        }
      }
    });
    std::vector<double> local_values(B * local_k);
    std::vector<int64_t> local_counts(B * local_k);
    cluster_singular_sums(images, image_labels, local_k, local_values.data(), local_counts.data());
    for (int64_t b = 0; b < B; ++b) {
      double total = 0.0;
      int64_t valid = 0;
      for (int64_t c = b * local_k; c < (b + 1) * local_k; ++c) {
        if (local_counts[c] >= 2) { total += local_values[c]; ++valid; }
      }
      intra_image_raw += (valid > 0 ? total / valid : 0.0) / B;
    }

    // ---- M_intra_batch and M_inter: k-means with global_k on each group ----
    std::vector<double> group_inter(G);
    std::vector<at::Tensor> groups(G);
    std::vector<const int64_t*> group_labels(G);
    const at::Tensor flat = x.view({B * N, d});
    at::parallel_for(0, G, 1, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> counts(global_k);
      for (int64_t g = begin; g < end; ++g) {
        groups[g] = flat.narrow(0, g * group * N, shape.group_images(g) * N);
        at::Tensor cg = centroids.select(0, g);
        int64_t* labels = global_out.data_ptr<int64_t>() + g * group * N;
        group_labels[g] = labels;
        std::vector<bool> usable;
        if (global_labels.has_value()) {
          cluster_means(groups[g], labels, global_k, cg, counts);
          usable.resize(global_k);
          for (int64_t c = 0; c < global_k; ++c) usable[c] = counts[c] > 0;
        } else {
          kmeans_problem(groups[g], options.global, common::RandomStream::kGlobalKmeansSeeding, g, cg, labels);
        }
        group_inter[g] =
            nearest_other_centroid(groups[g], cg, labels, usable, other.data_ptr<int64_t>() + g * group * N);
      }
    });
    std::vector<double> global_values(G * global_k);
    std::vector<int64_t> global_counts(G * global_k);
    cluster_singular_sums(groups, group_labels, global_k, global_values.data(), global_counts.data());
    int64_t valid = 0;
    for (int64_t c = 0; c < G * global_k; ++c) {
      if (global_counts[c] >= 2) { intra_batch_raw += global_values[c]; ++valid; }
    }
    intra_batch_raw = valid > 0 ? intra_batch_raw / valid : 0.0;
    for (int64_t g = 0; g < G; ++g) inter_raw += group_inter[g] / G;
  }

  // ---- M_dim: effective rank of B x d matrices of permuted patches ----
  const at::Tensor y = permuted_rows(x, perm);  // [N, B, d]
  std::vector<double> ranks(N);
  effective_ranks(y, ranks.data());
  double dim = 0.0;
  for (double r : ranks) dim += r / N;

  const double s = prep.collapsed ? 1.0 : prep.scale;
  const double inter = inter_raw / s, intra_image = intra_image_raw / s, intra_batch = intra_batch_raw / s;
  const std::vector<double> values = {inter + dim - (intra_batch + intra_image) / 2.0, inter, intra_image,
                                      intra_batch, dim};
  return {tensor_from(values, centroids.options()), local_out, global_out, centroids, other, perm};
}

at::Tensor dse_backward_cpu(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                            const at::Tensor& local_labels, const at::Tensor& global_labels,
                            const at::Tensor& centroids, const at::Tensor& other, const at::Tensor& perm,
                            int64_t local_k, int64_t global_k, int64_t group, bool normalize) {
  const DseShape shape = check_dse_backward_inputs(grad, values, feats, local_labels, global_labels, centroids, other,
                                                   perm, local_k, global_k, group);
  const int64_t B = shape.batch, N = shape.patches, d = shape.channels;
  const int64_t G = shape.groups;
  const at::Tensor g5 = grad.to(at::kDouble).contiguous(), v5 = values.to(at::kDouble).contiguous();
  const double* gv = g5.data_ptr<double>();
  const double* vv = v5.data_ptr<double>();
  if (!at::isfinite(v5).all().item<bool>() || !at::isfinite(g5).all().item<bool>()) {
    return at::full_like(feats, std::numeric_limits<double>::quiet_NaN());
  }
  const Prepared prep = prepare_features(feats, normalize);
  const at::Tensor& x = prep.scaled.x;
  at::Tensor gx = at::zeros_like(x);  // d loss / d x  [B, N, d]
  // dse = inter + dim - (intra_batch + intra_image) / 2
  const double g_inter = gv[0] + gv[1], g_image = gv[2] - gv[0] / 2, g_batch = gv[3] - gv[0] / 2,
               g_dim = gv[4] + gv[0];

  if (!prep.collapsed) {
    const double s = prep.scale;
    const at::Tensor ll = local_labels.contiguous(), gl = global_labels.contiguous();
    const at::Tensor cc = centroids.to(x.scalar_type()).contiguous(), oc = other.contiguous();
    std::vector<at::Tensor> images(B), image_grads(B);
    std::vector<const int64_t*> image_labels(B);
    std::vector<double> local_weights(B * local_k);
    std::vector<int64_t> counts;
    for (int64_t b = 0; b < B; ++b) {
      images[b] = x.select(0, b);
      image_grads[b] = gx.select(0, b);
      image_labels[b] = ll.data_ptr<int64_t>() + b * N;
      const int64_t valid = valid_clusters(image_labels[b], N, local_k, counts);
      for (int64_t c = 0; c < local_k; ++c) {
        local_weights[b * local_k + c] = counts[c] >= 2 ? g_image / (s * B * valid) : 0.0;
      }
    }
    cluster_singular_sums_backward(images, image_labels, local_k, local_weights.data(), image_grads);

    const at::Tensor flat = x.view({B * N, d});
    at::Tensor gflat = gx.view({B * N, d});
    std::vector<at::Tensor> groups(G), group_grads(G);
    std::vector<const int64_t*> group_labels(G);
    int64_t total_valid = 0;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t M = shape.group_images(g) * N;
      groups[g] = flat.narrow(0, g * group * N, M);
      group_grads[g] = gflat.narrow(0, g * group * N, M);
      group_labels[g] = gl.data_ptr<int64_t>() + g * group * N;
      total_valid += valid_clusters(group_labels[g], M, global_k, counts);
    }
    const std::vector<double> global_weights(G * global_k, total_valid > 0 ? g_batch / (s * total_valid) : 0.0);
    cluster_singular_sums_backward(groups, group_labels, global_k, global_weights.data(), group_grads);
    at::parallel_for(0, G, 1, [&](int64_t begin, int64_t end) {
      for (int64_t g = begin; g < end; ++g) {
        nearest_other_centroid_backward(groups[g], cc.select(0, g), oc.data_ptr<int64_t>() + g * group * N,
                                        g_inter / (s * G), group_grads[g], nullptr);
      }
    });
    // Through s = mean ||x_i - mu||: d s / d x_i = (u_i - mean_j u_j) / (B N).
    const double coeff = -(g_inter * vv[1] + g_image * vv[2] + g_batch * vv[3]) / s;  // values are raw / s
    const at::Tensor centered = flat - flat.mean(0, true);
    const at::Tensor norms = at::linalg_vector_norm(centered, 2, {-1}, true);
    const at::Tensor unit = at::where(norms > 0, centered / at::clamp_min(norms, kNormEps), at::zeros_like(centered));
    gflat.add_((unit - unit.mean(0, true)) * (coeff / static_cast<double>(B * N)));
  }

  // M_dim: scatter each permuted matrix's gradient back to its patches.
  const at::Tensor pc = perm.contiguous();
  const at::Tensor y = permuted_rows(x, pc);  // [N, B, d]
  at::Tensor gy = at::zeros_like(y);
  const std::vector<double> rank_grads(N, g_dim / N);
  effective_ranks_backward(y, rank_grads.data(), gy);
  const at::Tensor images = at::arange(B, pc.options()).unsqueeze(1);
  gx.index_put_({images, pc}, gy.transpose(0, 1), /*accumulate=*/true);

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
