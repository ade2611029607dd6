#include "options.h"

#include <ATen/ATen.h>

namespace sdd {

Seeding parse_seeding(const std::string& seeding) {
  if (seeding == "greedy") return Seeding::kGreedy;
  if (seeding == "d2") return Seeding::kD2;
  if (seeding == "d") return Seeding::kD;
  TORCH_CHECK_VALUE(false, "seeding must be one of 'greedy', 'd2', 'd'; got '", seeding, "'");
}

KmeansOptions make_kmeans_options(int64_t k, int64_t iters, double tol, int64_t n_init,
                                  const std::string& seeding, int64_t seed) {
  TORCH_CHECK_VALUE(k >= 1, "k must be >= 1; got ", k);
  TORCH_CHECK_VALUE(iters >= 0, "iters must be >= 0; got ", iters);
  TORCH_CHECK_VALUE(tol >= 0.0, "tol must be >= 0; got ", tol);
  TORCH_CHECK_VALUE(n_init >= 1, "n_init must be >= 1; got ", n_init);
  return KmeansOptions{k, iters, tol, n_init, parse_seeding(seeding), seed};
}

void check_float_tensor(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()),
                   name, " must be a floating-point tensor (fp16, bf16, fp32 or fp64); got ",
                   t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == dim, name, " must be ", dim, "-D; got shape ", t.sizes());
}

void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), name, " must be on the same device as ", ref_name, " (",
                    ref.device(), "); got ", t.device());
}

void check_labels_tensor(const at::Tensor& labels, const char* name, at::IntArrayRef shape) {
  TORCH_CHECK_TYPE(labels.scalar_type() == at::kLong, name, " must be int64; got ",
                   labels.scalar_type());
  TORCH_CHECK_VALUE(labels.sizes() == shape, name, " must have shape ", shape, "; got ",
                    labels.sizes());
}

void check_label_range(const at::Tensor& labels, int64_t k, const char* name) {
  if (labels.numel() == 0 || !labels.device().is_cpu()) return;
  const bool ok = at::logical_and(at::ge(labels, 0), at::lt(labels, k)).all().item<bool>();
  TORCH_CHECK_VALUE(ok, name, " must hold values in [0, ", k, ")");
}

DseShape check_dse_inputs(const at::Tensor& feats, const DseOptions& options,
                          const c10::optional<at::Tensor>& local_labels,
                          const c10::optional<at::Tensor>& global_labels) {
  check_float_tensor(feats, "feats", 3);
  const int64_t B = feats.size(0), N = feats.size(1), d = feats.size(2);
  TORCH_CHECK_VALUE(B >= 1, "feats must hold at least one image (B >= 1); got shape ", feats.sizes());
  TORCH_CHECK_VALUE(d >= 1, "feats must have at least one channel (d >= 1); got shape ", feats.sizes());
  TORCH_CHECK_VALUE(N >= 2 * options.local_k, "feats has N = ", N,
                    " patches per image; local_k = ", options.local_k, " needs N >= 2 * local_k");
  DseShape shape{B, N, d, (B + options.group - 1) / options.group, options.group};
  const int64_t smallest_group = shape.group_images(shape.groups - 1) * N;
  TORCH_CHECK_VALUE(smallest_group >= 2 * options.global_k, "the last group of images holds ",
                    smallest_group, " patches; global_k = ", options.global_k,
                    " needs >= 2 * global_k patches in every group (B = ", B, ", group = ",
                    options.group, ", N = ", N, ")");
  if (local_labels.has_value()) {
    check_same_device(*local_labels, "local_labels", feats, "feats");
    check_labels_tensor(*local_labels, "local_labels", {B, N});
    check_label_range(*local_labels, options.local_k, "local_labels");
  }
  if (global_labels.has_value()) {
    check_same_device(*global_labels, "global_labels", feats, "feats");
    check_labels_tensor(*global_labels, "global_labels", {shape.groups, options.group * N});
    // Entries past the end of a smaller last group are padding and not read.
    for (int64_t g = 0; g < shape.groups; ++g) {
      check_label_range(global_labels->select(0, g).narrow(0, 0, shape.group_images(g) * N),
                        options.global_k, "global_labels");
    }
  }
  return shape;
}

KmeansOptions check_kmeans_inputs(const at::Tensor& x, int64_t k, int64_t iters, double tol, int64_t n_init,
                                  const std::string& seeding, int64_t seed) {
  check_float_tensor(x, "x", 3);
  const KmeansOptions options = make_kmeans_options(k, iters, tol, n_init, seeding, seed);
  TORCH_CHECK_VALUE(x.size(1) >= k, "x holds M = ", x.size(1), " points per problem; k = ", k, " needs M >= k");
  TORCH_CHECK_VALUE(x.size(2) >= 1, "x must have at least one channel; got shape ", x.sizes());
  return options;
}

void check_cluster_inputs(const at::Tensor& x, const at::Tensor& labels, int64_t k) {
  check_float_tensor(x, "x", 3);
  check_same_device(labels, "labels", x, "x");
  check_labels_tensor(labels, "labels", {x.size(0), x.size(1)});
  TORCH_CHECK_VALUE(k >= 1, "k must be >= 1; got ", k);
  check_label_range(labels, k, "labels");
}

void check_effective_rank_input(const at::Tensor& y) {
  check_float_tensor(y, "y", 3);
  TORCH_CHECK_VALUE(y.size(1) >= 1 && y.size(2) >= 1, "y must be [Q, R, d] with R, d >= 1; got shape ",
                    y.sizes());
}

at::ScalarType check_inter_inputs(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& labels) {
  check_float_tensor(x, "x", 3);
  check_float_tensor(centroids, "centroids", 3);
  TORCH_CHECK_VALUE(centroids.size(0) == x.size(0) && centroids.size(2) == x.size(2),
                    "centroids must have shape [P, k, d] = [", x.size(0), ", k, ", x.size(2), "]; got ",
                    centroids.sizes());
  TORCH_CHECK_VALUE(centroids.size(1) >= 1, "centroids must hold k >= 1 centroids; got shape ", centroids.sizes());
  check_same_device(centroids, "centroids", x, "x");
  check_same_device(labels, "labels", x, "x");
  check_labels_tensor(labels, "labels", {x.size(0), x.size(1)});
  check_label_range(labels, centroids.size(1), "labels");
  return (x.scalar_type() == at::kDouble || centroids.scalar_type() == at::kDouble) ? at::kDouble : at::kFloat;
}

DseShape check_dse_backward_inputs(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                                   const at::Tensor& local_labels, const at::Tensor& global_labels,
                                   const at::Tensor& centroids, const at::Tensor& other, const at::Tensor& perm,
                                   int64_t local_k, int64_t global_k, int64_t group) {
  check_float_tensor(feats, "feats", 3);
  TORCH_CHECK_VALUE(local_k >= 1 && global_k >= 1 && group >= 1, "local_k, global_k and group must be >= 1; got ",
                    local_k, ", ", global_k, ", ", group);
  const int64_t B = feats.size(0), N = feats.size(1), d = feats.size(2);
  TORCH_CHECK_VALUE(B >= 1 && N >= 1 && d >= 1, "feats must be [B, N, d] with B, N, d >= 1; got shape ",
                    feats.sizes());
  const DseShape shape{B, N, d, (B + group - 1) / group, group};
  const int64_t G = shape.groups, M = group * N;
  TORCH_CHECK_VALUE(grad.numel() == 5 && values.numel() == 5, "grad and values must hold the 5 values of dse");
  const std::pair<const at::Tensor*, const char*> constants[] = {
      {&local_labels, "local_labels"}, {&global_labels, "global_labels"}, {&other, "other"}, {&perm, "perm"},
      {&centroids, "centroids"}, {&grad, "grad"}, {&values, "values"}};
  for (const auto& [t, name] : constants) check_same_device(*t, name, feats, "feats");
  check_labels_tensor(local_labels, "local_labels", {B, N});
  check_labels_tensor(global_labels, "global_labels", {G, M});
  check_labels_tensor(other, "other", {G, M});
  check_labels_tensor(perm, "perm", {B, N});
  check_float_tensor(centroids, "centroids", 3);
  TORCH_CHECK_VALUE(centroids.size(0) == G && centroids.size(1) == global_k && centroids.size(2) == d,
                    "centroids must have shape [", G, ", ", global_k, ", ", d, "]; got ", centroids.sizes());
  check_label_range(local_labels, local_k, "local_labels");
  for (int64_t g = 0; g < G; ++g) {  // entries past a smaller last group are padding
    const int64_t valid = shape.group_images(g) * N;
    check_label_range(global_labels.select(0, g).narrow(0, 0, valid), global_k, "global_labels");
    check_label_range(other.select(0, g).narrow(0, 0, valid) + 1, global_k + 1,
                      "other + 1 (other: the nearest other cluster, -1 for none)");
  }
  check_label_range(perm, N, "perm");
  return shape;
}

DseOptions make_dse_options(int64_t local_k, int64_t global_k, int64_t group, int64_t iters, double tol,
                            int64_t n_init, const std::string& seeding, int64_t seed) {
  // Named here, before make_kmeans_options would call either of them plain "k".
  TORCH_CHECK_VALUE(local_k >= 1, "local_k must be >= 1; got ", local_k);
  TORCH_CHECK_VALUE(global_k >= 1, "global_k must be >= 1; got ", global_k);
  TORCH_CHECK_VALUE(group >= 1, "group must be >= 1; got ", group);
  return DseOptions{local_k, global_k, group,
                    make_kmeans_options(local_k, iters, tol, n_init, seeding, seed),
                    make_kmeans_options(global_k, iters, tol, n_init, seeding, seed)};
}

}  // namespace sdd
