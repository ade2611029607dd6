// Host side of the whole metric (SPEC steps 1-7) and its backward pass for every Backend:
// kernels for k-means, the spectra and the distances; ATen for the elementwise steps. The
// collapse test and the non-finite check stay on the device (masks, not branches): no host
// sync, so the CUDA path is graph-capturable.
#pragma once

#include <ATen/ATen.h>

#include <limits>
#include <string>
#include <tuple>

#include "../kernels/inter.h"
#include "../inputs/features.h"
#include "inter.h"
#include "kmeans.h"
#include "spectra.h"

namespace sdd {
namespace device_ops {

using DseForward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Normalised, rescaled features, the scale s and the collapse flag (SPEC steps 1-2), on x's device.
struct DevicePrepared {
  ScaledFeatures scaled;  // x [B, N, d] compute dtype, contiguous, and its power-of-two factor
  at::Tensor scale;       // 0-d fp64: s, or 1 when collapsed
  at::Tensor live;        // 0-d fp64: 0 when collapsed, else 1
};

inline DevicePrepared prepare_on_device(const at::Tensor& feats, bool normalize) {
  ScaledFeatures scaled = scaled_features(feats, normalize);
  const at::Tensor flat = scaled.x.view({-1, scaled.x.size(2)}).to(at::kDouble);
  const at::Tensor scale = at::linalg_vector_norm(flat - flat.mean(0, true), 2, {-1}).mean();
  const at::Tensor collapsed = scale <= kCollapseFraction * at::linalg_vector_norm(flat, 2, {-1}).mean();
  return {std::move(scaled), at::where(collapsed, at::ones_like(scale), scale),
          at::logical_not(collapsed).to(at::kDouble)};
}

// [G, group * N, d] view of x [B, N, d] (a zero-padded copy when the last group is smaller).
inline at::Tensor grouped(const at::Tensor& x, int64_t groups, int64_t group) {
  const int64_t B = x.size(0), N = x.size(1), d = x.size(2);
  if (B == groups * group) return x.view({groups, group * N, d});
  at::Tensor padded = at::zeros({groups * group * N, d}, x.options());
  padded.narrow(0, 0, B * N).copy_(x.view({B * N, d}));
  return padded.view({groups, group * N, d});
}

// perm [B, N]: every image's patches sorted by their Philox keys (stable), as the CPU kernel.
template <class Backend>
at::Tensor patch_permutation(int64_t seed, int64_t B, int64_t N, const at::TensorOptions& long_opts) {
  at::Tensor keys = at::empty({B, N}, long_opts);
  const kernels::PatchKeysArgs args{seed, B, N, keys.data_ptr<int64_t>()};
  const int64_t blocks = std::min<int64_t>(1024, (B * N + kernels::kThreads - 1) / kernels::kThreads);
  Backend::template launch<kernels::PatchKeysKernel>({blocks, 1}, 0, args);
  return std::get<1>(at::sort(keys, /*stable=*/true, /*dim=*/1, /*descending=*/false));
}

// Y[n, b] = x[b, perm[b, n]]: [N, B, d].
inline at::Tensor permuted_rows(const at::Tensor& x, const at::Tensor& perm) {
  const at::Tensor index = perm.unsqueeze(-1).expand({x.size(0), x.size(1), x.size(2)});
  return x.gather(1, index).transpose(0, 1).contiguous();
}

// Mean over each row of values [P, k] of its clusters with >= 2 points (0 where none).
inline at::Tensor mean_over_valid(const at::Tensor& values, const at::Tensor& counts) {
  const at::Tensor valid = counts >= 2;
  const at::Tensor n = valid.sum(1);
  return at::where(n > 0, at::where(valid, values, 0.0).sum(1) / n.clamp_min(1), 0.0);
}

template <class Backend>
DseForward dse_forward_op(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group, bool normalize,
                          int64_t iters, double tol, int64_t n_init, c10::string_view seeding, int64_t seed,
                          const c10::optional<at::Tensor>& local_labels,
                          const c10::optional<at::Tensor>& global_labels) {
  const DseOptions options = make_dse_options(local_k, global_k, group, iters, tol, n_init, std::string(seeding), seed);
  const DseShape shape = check_dse_inputs(feats, options, local_labels, global_labels);
  const typename Backend::Guard guard(feats.device());
  const int64_t B = shape.batch, N = shape.patches, d = shape.channels, G = shape.groups, M = group * N;
  const at::TensorOptions long_opts = feats.options().dtype(at::kLong);
  const DevicePrepared prep = prepare_on_device(feats, normalize);
  const at::Tensor& x = prep.scaled.x;
  const at::TensorOptions f64 = x.options().dtype(at::kDouble);

  // ---- M_intra_image: k-means with local_k on each image ----
  at::Tensor local_out = local_labels.has_value() ? local_labels->contiguous().clone() : at::empty({B, N}, long_opts);
  if (!local_labels.has_value()) {
    at::Tensor scratch = at::empty({B, local_k, d}, x.options()), inertia = at::empty({B}, f64);
    run_kmeans<Backend>(x, B * N, options.local, common::RandomStream::kKmeansSeeding, scratch, local_out, inertia);
  }
  const ClusterLayout local = sort_clusters<Backend>(local_out, B * N, local_k, d);
  const at::Tensor intra_image = mean_over_valid(cluster_spectra<Backend>(x, local, local_k), local.counts).mean();

  // ---- M_intra_batch and M_inter: k-means with global_k on each group ----
  const at::Tensor xg = grouped(x, G, group);
  at::Tensor global_out = global_labels.has_value() ? global_labels->contiguous().clone()
                                                    : at::full({G, M}, -1, long_opts);
  at::Tensor centroids = at::empty({G, global_k, d}, x.options()), usable;
  if (global_labels.has_value()) {
    usable = at::empty({G, global_k}, long_opts);
    run_cluster_means<Backend>(xg, global_out, B * N, global_k, centroids, usable);
  } else {
    at::Tensor inertia = at::empty({G}, f64);
    run_kmeans<Backend>(xg, B * N, options.global, common::RandomStream::kGlobalKmeansSeeding, centroids,
                        global_out, inertia);
  }
  const ClusterLayout global = sort_clusters<Backend>(global_out, B * N, global_k, d);
  const at::Tensor global_values = cluster_spectra<Backend>(xg, global, global_k);
  const at::Tensor global_valid = global.counts >= 2;
  const at::Tensor intra_batch = at::where(global_valid, global_values, 0.0).sum() /
                                 global_valid.sum().clamp_min(1).to(at::kDouble);
  auto [inter_means, other] = inter_forward<Backend>(xg, centroids, global_out, B * N, usable);
  const at::Tensor inter = inter_means.mean();

  // ---- M_dim: effective rank of B x d matrices of permuted patches ----
  const at::Tensor perm = patch_permutation<Backend>(seed, B, N, long_opts);
  const at::Tensor dim = effective_ranks<Backend>(permuted_rows(x, perm)).mean();

  // ---- combine (collapsed: class relevance terms are 0; non-finite input: every value NaN) ----
  const at::Tensor factor = prep.live / prep.scale;
  const at::Tensor m_inter = inter * factor, m_image = intra_image * factor, m_batch = intra_batch * factor;
  at::Tensor values = at::stack({m_inter + dim - (m_batch + m_image) / 2, m_inter, m_image, m_batch, dim});
  values = at::where(at::isfinite(feats).all(), values, std::numeric_limits<double>::quiet_NaN());
  return {values.to(x.scalar_type()), local_out, global_out, centroids, other, perm};
}

template <class Backend>
at::Tensor dse_backward_op(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                           const at::Tensor& local_labels, const at::Tensor& global_labels,
                           const at::Tensor& centroids, const at::Tensor& other, const at::Tensor& perm,
                           int64_t local_k, int64_t global_k, int64_t group, bool normalize) {
  const DseShape shape = check_dse_backward_inputs(grad, values, feats, local_labels, global_labels, centroids, other,
                                                   perm, local_k, global_k, group);
  const int64_t B = shape.batch, N = shape.patches, d = shape.channels, G = shape.groups, M = group * N;
  const typename Backend::Guard guard(feats.device());
  const at::Tensor g5 = grad.to(at::kDouble).contiguous(), v5 = values.to(at::kDouble).contiguous();
  const DevicePrepared prep = prepare_on_device(feats, normalize);
  const at::Tensor& x = prep.scaled.x;
  at::Tensor gx = at::zeros_like(x);  // d loss / d x  [B, N, d]
  // dse = inter + dim - (intra_batch + intra_image) / 2; class relevance terms are 0 when collapsed
  const at::Tensor live = prep.live / prep.scale;  // d (raw / s) / d raw, and 0 when collapsed
  const at::Tensor g_inter = (g5[0] + g5[1]) * live, g_image = (g5[2] - g5[0] / 2) * live,
                   g_batch = (g5[3] - g5[0] / 2) * live, g_dim = g5[4] + g5[0];

  // M_intra_image through every image's clusters
  const ClusterLayout local = sort_clusters<Backend>(local_labels.contiguous(), B * N, local_k, d);
  const at::Tensor local_valid = local.counts >= 2;
  const at::Tensor local_weights =
      local_valid.to(at::kDouble) * (g_image / B) / local_valid.sum(1, true).clamp_min(1).to(at::kDouble);
  cluster_spectra<Backend>(x, local, local_k, local_weights, &gx);

  // M_intra_batch and M_inter through every group's clusters and nearest other centroids
  const at::Tensor xg = grouped(x, G, group);
  const bool ragged = B != G * group;
  at::Tensor gxg = ragged ? at::zeros_like(xg) : gx.view({G, M, d});
  const ClusterLayout global = sort_clusters<Backend>(global_labels.contiguous(), B * N, global_k, d);
  const at::Tensor global_valid = global.counts >= 2;
  const at::Tensor global_weights =
      global_valid.to(at::kDouble) * g_batch / global_valid.sum().clamp_min(1).to(at::kDouble);
  cluster_spectra<Backend>(xg, global, global_k, global_weights, &gxg);
  inter_backward<Backend>(xg, centroids.to(x.scalar_type()).contiguous(), other.contiguous(), B * N,
                          (g_inter / G).expand({G}), gxg, nullptr);
  if (ragged) gx.view({B * N, d}).add_(gxg.view({G * M, d}).narrow(0, 0, B * N));

  // through s = mean ||x_i - mu||: d s / d x_i = (u_i - mean_j u_j) / (B N)
  const at::Tensor flat = x.view({B * N, d});
  const at::Tensor coeff = -(g_inter * v5[1] + g_image * v5[2] + g_batch * v5[3]);  // values are raw / s
  const at::Tensor centered = flat - flat.mean(0, true);
  const at::Tensor norms = at::linalg_vector_norm(centered, 2, {-1}, true);
  const at::Tensor unit = at::where(norms > 0, centered / at::clamp_min(norms, kNormEps), 0.0);
  gx.view({B * N, d}).add_(((unit - unit.mean(0, true)) * (coeff / static_cast<double>(B * N))).to(x.scalar_type()));

  // M_dim: every permuted matrix's gradient back to its patches (a permutation: no collisions).
  // perm is range-checked on the CPU only (a device check needs a sync): on a GPU an index out of
  // range is clamped, so nothing is read out of bounds, and the gradient is NaN.
  const at::Tensor perm_ok = at::logical_and(perm >= 0, perm < N).all();
  const at::Tensor pc = perm.clamp(0, N - 1).contiguous();
  const at::Tensor gy = effective_ranks<Backend>(permuted_rows(x, pc), (g_dim / N).expand({N}));
  gx.add_(at::zeros_like(x).scatter_(1, pc.unsqueeze(-1).expand({B, N, d}), gy.transpose(0, 1)));

  gx = unscale_gradient(gx, prep.scaled, feats, normalize);  // through the rescaling and the normalisation

  // a label out of range (range-checked on the CPU only) leaves its problem out of the sort: NaN
  const at::Tensor labels_ok = local.bad.eq(0).all() & global.bad.eq(0).all() &
                               at::logical_and(other >= -1, other < global_k).all();  // the kernel skips others
  const at::Tensor finite = at::isfinite(v5).all() & at::isfinite(g5).all() & perm_ok & labels_ok;
  return at::where(finite, gx, std::numeric_limits<double>::quiet_NaN()).to(feats.scalar_type());
}

}  // namespace device_ops
}  // namespace sdd
