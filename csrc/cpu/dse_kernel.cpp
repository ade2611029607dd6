// The whole metric on the CPU (SPEC steps 1-7) and its backward pass.
//
// dse_forward returns, besides the five numbers, the constants of the forward pass that the
// backward needs: labels, centroids, nearest-other indices and the patch permutation. Both
// passes are one helper per component (intra_image, intra_batch, inter, dim), called in a fixed
// order: the backward helpers add into one gradient, so the order fixes its rounding.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "../inputs/features.h"
#include "dse_cpu.h"
#include "kernels.h"
#include "parallel_tasks.h"
#include "prepare.h"
#include "tensor_utils.h"

namespace sdd {
namespace cpu {
namespace {

// KeptSpectra of the three spectral components <-> the tensors of a DseSpectra.
enum SpectralPart { kImage = 0, kGroup = 1, kDim = 2 };

KeptSpectra* kept_part(std::vector<KeptSpectra>* parts, SpectralPart part) {
  return parts != nullptr ? &(*parts)[part] : nullptr;
}

DseSpectra spectra_tensors(const std::vector<KeptSpectra>& parts) {
  DseSpectra out;
  for (const KeptSpectra& part : parts) {
    out.push_back(part.data.defined() ? part.data : at::empty({0}, at::kDouble));
    out.push_back(at::tensor(part.offsets.empty() ? std::vector<int64_t>{} : part.offsets, at::kLong));
  }
  return out;
}

// The prepared features (x and its numbers) as two more tensors of a DseSpectra, and back: the
// backward then skips the normalisation pass.
void keep_prepared(const PreparedFeatures& prep, DseSpectra& out) {
  std::vector<double> numbers = {prep.factor, prep.scale, prep.collapsed ? 1.0 : 0.0};
  numbers.insert(numbers.end(), prep.mean.begin(), prep.mean.end());
  out.push_back(prep.x);
  out.push_back(at::tensor(numbers, at::kDouble));
}

PreparedFeatures kept_prepared(const DseSpectra& tensors) {
  const at::Tensor& numbers = tensors[7];
  const double* n = numbers.data_ptr<double>();
  return {tensors[6], n[0], std::vector<double>(n + 3, n + numbers.numel()), n[1], n[2] != 0.0, true};
}

std::vector<KeptSpectra> spectra_parts(const DseSpectra& tensors) {
  std::vector<KeptSpectra> parts(3);
  for (size_t i = 0; i < parts.size(); ++i) {
    parts[i].data = tensors[2 * i];
    const at::Tensor& offsets = tensors[2 * i + 1];
    parts[i].offsets.assign(offsets.data_ptr<int64_t>(), offsets.data_ptr<int64_t>() + offsets.numel());
  }
  return parts;
}

int64_t valid_clusters(const int64_t* labels, int64_t M, int64_t k, std::vector<int64_t>& counts) {
  counts.assign(k, 0);
  for (int64_t i = 0; i < M; ++i) ++counts[labels[i]];
  int64_t valid = 0;
  for (int64_t c = 0; c < k; ++c) valid += counts[c] >= 2;
  return valid;
}

// The rows of x [B, N, d] as one table [B N, d], and its image and group problems.
at::Tensor rows_of(const at::Tensor& x) { return x.view({x.size(0) * x.size(1), x.size(2)}); }

// Image b: rows b N .. b N + N - 1, labels [B, N].
ClusterProblems image_problems(const at::Tensor& x, const at::Tensor& labels, int64_t k) {
  return ClusterProblems::batched(x, labels, k);
}

// Group g: rows g group N .. (its images) N, labels [G, group N] (padding -1 after its points).
ClusterProblems group_problems(const at::Tensor& x, const DseShape& shape, const at::Tensor& labels, int64_t k) {
  ClusterProblems out{rows_of(x), {}, {}, {}, k};
  for (int64_t g = 0; g < shape.groups; ++g) {
    out.first_row.push_back(g * shape.group * shape.patches);
    out.points.push_back(shape.group_images(g) * shape.patches);
    out.labels.push_back(labels.data_ptr<int64_t>() + g * labels.size(1));
  }
  return out;
}

// Table rows of the M_dim matrices: matrix n holds row b N + perm[b, n] of every image b ([N * B]).
std::vector<int64_t> permuted_rows(const at::Tensor& perm) {
  const int64_t B = perm.size(0), N = perm.size(1);
  const int64_t* p = perm.data_ptr<int64_t>();
  std::vector<int64_t> rows(N * B);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t b = 0; b < B; ++b) rows[n * B + b] = b * N + p[b * N + n];
  }
  return rows;
}

// ---- forward, one helper per component; each returns its raw value (before the division by s) ----

// The clusters of a forward: the labels of both levels, the groups' centroids (k-means' or the means
// of given labels), each point's nearest other centroid and every group's M_inter * s. Made by
// make_clustering (given labels copied in, the rest to be filled), filled by cluster_all.
struct Clustering {
  at::Tensor local_labels;          // [B, N]
  at::Tensor global_labels;         // [G, group N], -1 past a smaller last group's points
  at::Tensor centroids;             // [G, global_k, d] (compute dtype), zeros until filled
  at::Tensor other;                 // [G, group N]: the nearest other centroid, -1 where none
  std::vector<double> group_inter;  // [G]: M_inter * s of each group
  bool local_given = false, global_given = false;
};

Clustering make_clustering(const at::Tensor& feats, const DseShape& shape, const DseOptions& options,
                           const c10::optional<at::Tensor>& local_labels,
                           const c10::optional<at::Tensor>& global_labels) {
  const int64_t B = shape.batch, N = shape.patches, G = shape.groups, group_rows = options.group * N;
  const at::TensorOptions long_opts = feats.options().dtype(at::kLong);
  Clustering out;
  out.local_given = local_labels.has_value();
  out.global_given = global_labels.has_value();
  out.local_labels = out.local_given ? local_labels->contiguous().clone() : at::zeros({B, N}, long_opts);
  out.global_labels = out.global_given ? global_labels->contiguous().clone() : at::full({G, group_rows}, -1, long_opts);
  if (!out.global_given) {  // 0 where k-means does not run (collapse, NaN), -1 = padding
    for (int64_t g = 0; g < G; ++g) out.global_labels.select(0, g).narrow(0, 0, shape.group_images(g) * N).fill_(0);
  }
  // Zeroed on this thread: at::zeros fills a tensor this size in a parallel region (one more join).
  out.centroids = at::empty({G, options.global_k, shape.channels}, feats.options().dtype(compute_dtype(feats)));
  std::memset(out.centroids.data_ptr(), 0, out.centroids.nbytes());  // all-zero bytes: 0.0
  out.other = at::full({G, group_rows}, -1, long_opts);
  out.group_inter.assign(G, 0.0);
  return out;
}

// Every k-means of the call in one parallel region: the G groups (global_k clusters, the larger
// problems, first) and the B images (local_k clusters), into `out`. Given labels replace a level's
// k-means; the groups' centroids are then their labelled means. A group's k-means also finds each
// point's nearest other centroid (out.other) and their mean distance (out.group_inter); with given
// labels, inter_group does, later. Returns per group which centroids may be the nearest other one:
// empty after k-means (all), else those with points. norms [B N]: the rows' squared norms
// (prepare_features), shared by both levels' k-means. side(t), t < side_tasks, run as more tasks of the
// region, after the groups' (the caller's independent work: no serial time of its own).
std::vector<std::vector<bool>> cluster_all(const at::Tensor& x, const std::vector<double>& norms,
                                           const DseShape& shape, const DseOptions& options, Clustering& out,
                                           int64_t side_tasks, const std::function<void(int64_t)>& side) {
  const int64_t B = shape.batch, N = shape.patches, G = shape.groups, d = shape.channels;
  const at::Tensor table = rows_of(x);
  std::vector<std::vector<bool>> usable(G);
  const int64_t image_tasks = out.local_given ? 0 : B;
  parallel_tasks(G + side_tasks + image_tasks, [&](int64_t task) {
    if (task >= G && task < G + side_tasks) return side(task - G);
    if (task < G) {
      const int64_t g = task;
      const at::Tensor points = table.narrow(0, g * shape.group * N, shape.group_images(g) * N);
      at::Tensor cg = out.centroids.select(0, g);
      int64_t* rows = out.global_labels.data_ptr<int64_t>() + g * out.global_labels.size(1);
      if (out.global_given) {
        std::vector<int64_t> counts;
        cluster_means(points, rows, options.global.k, cg, counts);
        usable[g].resize(options.global.k);
        for (int64_t c = 0; c < options.global.k; ++c) usable[g][c] = counts[c] > 0;
      } else {
        NearestOthers others{out.other.data_ptr<int64_t>() + g * out.other.size(1)};
        kmeans_problem(points, options.global, common::RandomStream::kGlobalKmeansSeeding, g, cg, rows, false,
                       norms.data() + g * shape.group * N, &others);
        out.group_inter[g] = others.mean;
      }
      return;
    }
    const int64_t b = task - G - side_tasks;
    at::Tensor scratch = at::empty({options.local.k, d}, x.options());  // centroids [k, d], unused
    kmeans_problem(x.select(0, b), options.local, common::RandomStream::kKmeansSeeding, b, scratch,
                   out.local_labels.data_ptr<int64_t>() + b * N, false, norms.data() + b * N);
  });
  return usable;
}

// M_intra_image * s from the clusters' S values [B, k] and sizes: per image, the mean over its
// clusters of >= 2 points; then the mean over images.
double image_mean(const std::vector<double>& values, const std::vector<int64_t>& counts, int64_t B, int64_t k) {
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

// M_intra_batch * s from the S values and sizes of every group's clusters: their mean over those of
// >= 2 points.
double batch_mean(const std::vector<double>& values, const std::vector<int64_t>& counts) {
  double raw = 0.0;
  int64_t valid = 0;
  for (size_t c = 0; c < values.size(); ++c) {
    if (counts[c] >= 2) { raw += values[c]; ++valid; }
  }
  return valid > 0 ? raw / valid : 0.0;
}

// The spectra of the three spectral components, in one parallel region (for_each_spectrum): the
// clusters of every image and of every group (their labels in `clusters`, null when class relevance
// does not run), and the N matrices Y[n] [B, d] of permuted patches, Y[n, b] = x[b, perm[b, n]] (x
// [B, N, d], perm [B, N]). Outputs: S per image cluster [B, local_k] and group cluster [G, global_k]
// with the clusters' sizes, the effective rank per matrix [N]. side(t), t < side_tasks, runs in the
// same region. Without `parts` (eigenvalues only) both levels' clusters are one job, sorted by size
// together: fuller lane groups (the headline forward ~2-4% faster), values equal to rounding.
struct SpectralParts {
  std::vector<double> image_values, group_values, ranks;
  std::vector<int64_t> image_counts, group_counts;
};

SpectralParts spectral_parts(const at::Tensor& x, const DseShape& shape, const DseOptions& options,
                             const Clustering* clusters, const at::Tensor& perm, std::vector<KeptSpectra>* parts,
                             int64_t side_tasks, const std::function<void(int64_t)>& side) {
  const int64_t B = x.size(0), N = x.size(1), G = shape.groups;
  const int64_t local_k = options.local_k, global_k = options.global_k;
  SpectralParts out;
  out.ranks.resize(N);
  std::vector<SpectrumJob> jobs;
  if (clusters != nullptr) {
    out.image_values.resize(B * local_k);
    out.image_counts.resize(B * local_k);
    out.group_values.resize(G * global_k);
    out.group_counts.resize(G * global_k);
    const ClusterProblems images = image_problems(x, clusters->local_labels, local_k);
    const ClusterProblems groups = group_problems(x, shape, clusters->global_labels, global_k);
    const ClusterSums image_sums{&images, out.image_values.data(), out.image_counts.data()};
    const ClusterSums group_sums{&groups, out.group_values.data(), out.group_counts.data()};
    if (parts == nullptr) {  // eigenvalues only: both levels' clusters in one job, sorted together
      jobs.push_back(cluster_singular_sums_job({image_sums, group_sums}));
    } else {  // the backward reads each level's kept decompositions
      jobs.push_back(cluster_singular_sums_job({image_sums}, kept_part(parts, kImage)));
      jobs.push_back(cluster_singular_sums_job({group_sums}, kept_part(parts, kGroup)));
    }
  }
  jobs.push_back(effective_ranks_job(rows_of(x), permuted_rows(perm), B, out.ranks.data(), kept_part(parts, kDim)));
  for_each_spectrum(jobs, side_tasks, side);
  return out;
}

// Group g's part of M_inter * s: the mean distance of each of its points to the nearest usable
// centroid other than its own (centroids [G, k, d]), written to other [G, group * N] (-1: none).
double inter_group(const at::Tensor& x, const DseShape& shape, const at::Tensor& centroids, const at::Tensor& labels,
                   const std::vector<bool>& usable, at::Tensor& other, int64_t g) {
  const int64_t N = shape.patches;
  return nearest_other_centroid(rows_of(x).narrow(0, g * shape.group * N, shape.group_images(g) * N),
                                centroids.select(0, g), labels.data_ptr<int64_t>() + g * labels.size(1), usable,
                                other.data_ptr<int64_t>() + g * other.size(1));
}

}  // namespace

DseForward dse_forward(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group, bool normalize,
                       int64_t iters, double tol, int64_t n_init, c10::string_view seeding, int64_t seed,
                       const c10::optional<at::Tensor>& local_labels, const c10::optional<at::Tensor>& global_labels,
                       DseSpectra* keep) {
  std::vector<KeptSpectra> kept(3);
  std::vector<KeptSpectra>* parts = keep != nullptr ? &kept : nullptr;
  const DseOptions options = make_dse_options(local_k, global_k, group, iters, tol, n_init, std::string(seeding), seed);
  const DseShape shape = check_dse_inputs(feats, options, local_labels, global_labels);
  const int64_t B = shape.batch, N = shape.patches, G = shape.groups;
  Clustering clustering = make_clustering(feats, shape, options, local_labels, global_labels);
  at::Tensor perm = at::empty({B, N}, feats.options().dtype(at::kLong));
  auto permute = [&] { patch_permutation(seed, B, N, perm.data_ptr<int64_t>()); };

  const double nan = std::numeric_limits<double>::quiet_NaN();
  PreparedFeatures prep = prepare_features(feats, normalize, /*defer_scale=*/true);
  if (!prep.finite) {
    permute();
    return {tensor_from({nan, nan, nan, nan, nan}, clustering.centroids.options()), clustering.local_labels,
            clustering.global_labels, clustering.centroids.fill_(nan), clustering.other, perm};
  }
  const at::Tensor& x = prep.x;  // [B, N, d]
  double inter_raw = 0.0, intra_image_raw = 0.0, intra_batch_raw = 0.0;
  // The scale s is measured in the k-means' region (no join of its own), so the k-means runs before it
  // is known whether the features collapsed; if they did, its results are dropped (the class-relevance
  // terms are 0) and the clusters are as make_clustering left them.
  std::vector<double> scale_partials(scale_chunks(prep));
  const int64_t side_tasks = 1 + static_cast<int64_t>(scale_partials.size());  // the permutation, the scale's chunks
  std::vector<std::vector<bool>> usable =
      cluster_all(x, prep.row_norms, shape, options, clustering, side_tasks, [&](int64_t t) {
        if (t == 0) return permute();
        scale_part(prep, t - 1, scale_partials.data());
      });
  finish_scale(prep, scale_partials.data());
  if (prep.collapsed) clustering = make_clustering(feats, shape, options, local_labels, global_labels);
  // With given global labels, M_inter per group in the spectra's region (group_inter: from the k-means otherwise).
  const int64_t inter_tasks = !prep.collapsed && clustering.global_given ? G : 0;
  auto inter_of_group = [&](int64_t g) {
    clustering.group_inter[g] =
        inter_group(x, shape, clustering.centroids, clustering.global_labels, usable[g], clustering.other, g);
  };
  const SpectralParts spectra = spectral_parts(x, shape, options, prep.collapsed ? nullptr : &clustering, perm,
                                               parts, inter_tasks, inter_of_group);
  if (!prep.collapsed) {
    intra_image_raw = image_mean(spectra.image_values, spectra.image_counts, B, local_k);  // M_intra_image * s
    intra_batch_raw = batch_mean(spectra.group_values, spectra.group_counts);            // M_intra_batch * s
    for (int64_t g = 0; g < G; ++g) inter_raw += clustering.group_inter[g] / G;          // M_inter * s: their mean
  }
  double dim = 0.0;  // M_dim (scale-free): the mean effective rank
  for (double r : spectra.ranks) dim += r / N;
  if (keep != nullptr) {
    *keep = spectra_tensors(kept);
    keep_prepared(prep, *keep);
  }

  const double s = prep.collapsed ? 1.0 : prep.scale;
  const double inter = inter_raw / s, intra_image = intra_image_raw / s, intra_batch = intra_batch_raw / s;
  const std::vector<double> values = {inter + dim - (intra_batch + intra_image) / 2.0, inter, intra_image,
                                      intra_batch, dim};
  return {tensor_from(values, clustering.centroids.options()), clustering.local_labels, clustering.global_labels,
          clustering.centroids, clustering.other, perm};
}

// ---- backward, one helper per component; each adds its part of d loss / d x to gx [B, N, d] ----
// g_* = d loss / d M_* (from the five gradients), s the scale: raw components are M_* * s.

// M_intra_image = mean_b mean_{c valid in b} S(c) / s: every valid cluster of image b gets the
// weight g_image / (s B valid_b). labels [B, N].
namespace {

double intra_image_backward(const at::Tensor& x, const at::Tensor& labels, int64_t k, double g_image, double s,
                            at::Tensor& gx, const KeptSpectra* kept) {
  const int64_t B = x.size(0), N = x.size(1);
  std::vector<double> weights(B * k), values(B * k);  // [B, k]
  std::vector<int64_t> counts, sizes(B * k);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t valid = valid_clusters(labels.data_ptr<int64_t>() + b * N, N, k, counts);
    for (int64_t c = 0; c < k; ++c) weights[b * k + c] = counts[c] >= 2 ? g_image / (s * B * valid) : 0.0;
    std::copy(counts.begin(), counts.end(), sizes.begin() + b * k);
  }
  at::Tensor grad_table = rows_of(gx);
  cluster_singular_sums_backward(image_problems(x, labels, k), weights.data(), grad_table, kept, values.data());
  return image_mean(values, sizes, B, k);
}

// M_intra_batch = mean over the valid clusters of every group of S(c) / s: one weight,
// g_batch / (s valid). labels [G, group * N].
double intra_batch_backward(const at::Tensor& x, const DseShape& shape, const at::Tensor& labels, int64_t k,
                            double g_batch, double s, at::Tensor& gx, const KeptSpectra* kept) {
  const ClusterProblems groups = group_problems(x, shape, labels, k);
  std::vector<int64_t> counts, sizes(shape.groups * k);
  int64_t valid = 0;
  for (int64_t g = 0; g < shape.groups; ++g) {
    valid += valid_clusters(groups.labels[g], groups.points[g], k, counts);
    std::copy(counts.begin(), counts.end(), sizes.begin() + g * k);
  }
  const std::vector<double> weights(shape.groups * k, valid > 0 ? g_batch / (s * valid) : 0.0);
  std::vector<double> values(shape.groups * k);
  at::Tensor grad_table = rows_of(gx);
  cluster_singular_sums_backward(groups, weights.data(), grad_table, kept, values.data());
  return batch_mean(values, sizes);
}

// M_inter = mean_g mean_i ||x_i - centroid[other_i]|| / s, with the centroids [G, k, d] and the
// choices other [G, group * N] held constant.
void inter_backward(const at::Tensor& x, const DseShape& shape, const at::Tensor& centroids, const at::Tensor& other,
                    double g_inter, double s, at::Tensor& gx) {
  const int64_t G = shape.groups, N = shape.patches;
  const at::Tensor table = rows_of(x), grad_table = rows_of(gx);
  parallel_tasks(G, [&](int64_t g) {
    const int64_t first = g * shape.group * N, count = shape.group_images(g) * N;
    at::Tensor group_grad = grad_table.narrow(0, first, count);
    nearest_other_centroid_backward(table.narrow(0, first, count), centroids.select(0, g),
                                    other.data_ptr<int64_t>() + g * other.size(1), g_inter / (s * G), group_grad,
                                    nullptr);
  });
}

// M_dim = mean_n erank(Y[n]): every permuted matrix's gradient [B, d] lands on its patches.
void dim_backward(const at::Tensor& x, const at::Tensor& perm, double g_dim, at::Tensor& gx,
                  const KeptSpectra* kept) {
  const int64_t B = x.size(0), N = x.size(1);
  const std::vector<double> rank_grads(N, g_dim / N);
  at::Tensor grad_table = rows_of(gx);
  effective_ranks_backward(rows_of(x), permuted_rows(perm), B, rank_grads.data(), grad_table, kept);
}

}  // namespace

at::Tensor dse_backward(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                        const at::Tensor& local_labels, const at::Tensor& global_labels, const at::Tensor& centroids,
                        const at::Tensor& other, const at::Tensor& perm, int64_t local_k, int64_t global_k,
                        int64_t group, bool normalize, const DseSpectra* kept) {
  const std::vector<KeptSpectra> parts = kept != nullptr ? spectra_parts(*kept) : std::vector<KeptSpectra>();
  auto part = [&](SpectralPart which) -> const KeptSpectra* { return kept != nullptr ? &parts[which] : nullptr; };
  const DseShape shape = check_dse_backward_inputs(grad, values, feats, local_labels, global_labels, centroids, other,
                                                   perm, local_k, global_k, group);
  const at::Tensor g5 = grad.to(at::kDouble).contiguous(), v5 = values.to(at::kDouble).contiguous();
  const double* gv = g5.data_ptr<double>();
  const double* vv = v5.data_ptr<double>();
  if (!at::isfinite(v5).all().item<bool>() || !at::isfinite(g5).all().item<bool>()) {
    return at::full_like(feats, std::numeric_limits<double>::quiet_NaN());
  }
  const PreparedFeatures prep = kept != nullptr ? kept_prepared(*kept) : prepare_features(feats, normalize);
  if (!prep.finite) return at::full_like(feats, std::numeric_limits<double>::quiet_NaN());
  const at::Tensor& x = prep.x;       // [B, N, d]
  at::Tensor gx = at::zeros_like(x);  // d loss / d x
  // dse = inter + dim - (intra_batch + intra_image) / 2
  const double g_inter = gv[0] + gv[1], g_image = gv[2] - gv[0] / 2, g_batch = gv[3] - gv[0] / 2,
               g_dim = gv[4] + gv[0];

  if (!prep.collapsed) {  // collapsed: the class-relevance terms are constant 0
    const double s = prep.scale;
    // The intra terms' values for the gradient through s come from the backward's own spectra (kept or
    // solved again, the same bits either way), not from `values`: a forward may report eigenvalues of
    // another solver (the no-grad CPU forward's lane-parallel one), and the gradient must not depend on it.
    const double image = intra_image_backward(x, local_labels.contiguous(), local_k, g_image, s, gx, part(kImage));
    const double batch =
        intra_batch_backward(x, shape, global_labels.contiguous(), global_k, g_batch, s, gx, part(kGroup));
    inter_backward(x, shape, centroids.to(x.scalar_type()).contiguous(), other.contiguous(), g_inter, s, gx);
    // Through s of the three class-relevance terms (each raw / s).
    add_scale_gradient(prep, -(g_inter * vv[1] + (g_image * image + g_batch * batch) / s) / s, gx);
  }
  dim_backward(x, perm.contiguous(), g_dim, gx, part(kDim));
  return unscale_gradient(gx, prep, feats, normalize);  // through the rescaling and the normalisation
}

namespace {

DseForward dse_forward_cpu(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group,
                           bool normalize, int64_t iters, double tol, int64_t n_init, c10::string_view seeding,
                           int64_t seed, const c10::optional<at::Tensor>& local_labels,
                           const c10::optional<at::Tensor>& global_labels) {
  return dse_forward(feats, local_k, global_k, group, normalize, iters, tol, n_init, seeding, seed, local_labels,
                     global_labels, nullptr);
}

at::Tensor dse_backward_cpu(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                            const at::Tensor& local_labels, const at::Tensor& global_labels,
                            const at::Tensor& centroids, const at::Tensor& other, const at::Tensor& perm,
                            int64_t local_k, int64_t global_k, int64_t group, bool normalize) {
  return dse_backward(grad, values, feats, local_labels, global_labels, centroids, other, perm, local_k, global_k,
                      group, normalize, nullptr);
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("dse_forward", &dse_forward_cpu);
  m.impl("dse_backward", &dse_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
