// Options of the metric, as the ops receive them, and their validation.
//
// The defaults live in one place, sdd_fast/options.py; C++ callers pass every option.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <string>

namespace sdd {

enum class Seeding { kGreedy, kD2, kD };

// Parses "greedy" | "d2" | "d"; anything else is a ValueError naming `seeding`.
Seeding parse_seeding(const std::string& seeding);

struct KmeansOptions {
  int64_t k;
  int64_t iters;
  double tol;
  int64_t n_init;
  Seeding seeding;
  int64_t seed;
};

// Checks the k-means options (k, iters, tol, n_init, seeding) and returns them parsed.
KmeansOptions make_kmeans_options(int64_t k, int64_t iters, double tol, int64_t n_init,
                                  const std::string& seeding, int64_t seed);

struct DseOptions {
  int64_t local_k;
  int64_t global_k;
  int64_t group;
  bool normalize;
  KmeansOptions local;   // k = local_k
  KmeansOptions global;  // k = global_k
};

// Shape of the metric's problem, derived from feats [B, N, d] and the options.
struct DseShape {
  int64_t batch;     // B
  int64_t patches;   // N
  int64_t channels;  // d
  int64_t groups;    // G = ceil(B / group)
  int64_t group;     // images per full group

  int64_t group_images(int64_t g) const {
    const int64_t rest = batch - g * group;
    return rest < group ? rest : group;
  }
};

// Validates feats, options and labels (shapes, dtypes, ranges) before any work. Errors are
// ValueError / TypeError naming the argument.
DseShape check_dse_inputs(const at::Tensor& feats, const DseOptions& options,
                          const c10::optional<at::Tensor>& local_labels,
                          const c10::optional<at::Tensor>& global_labels);

// Checks that `t` is a floating-point tensor of `dim` dimensions, naming it `name`.
void check_float_tensor(const at::Tensor& t, const char* name, int64_t dim);

// Checks int64 labels of `shape`, naming them `name`; value range is checked by the kernels
// (on CPU here, against `k`).
void check_labels_tensor(const at::Tensor& labels, const char* name, at::IntArrayRef shape);

// Checks that every label in labels[..., :valid] is in [0, k) (CPU tensors only).
void check_label_range(const at::Tensor& labels, int64_t k, const char* name);

}  // namespace sdd
