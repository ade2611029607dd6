// Options of the metric, as the ops receive them, and their validation.
//
// csrc/inputs/ is what every backend (CPU, CUDA, emulator) does with an op's inputs before any
// kernel runs: this file checks them and parses the options, features.h prepares the features.
// Defaults: the `dse` schema (csrc/sdd.cpp) states them for callers of the op, and
// sdd_fast/core/options.py for the Python API and the reference; the structs here have none.
// python_tests/test_validation_parity.py checks that the schema and Python agree, and that
// these checks and the Python ones refuse the same inputs with the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <string>

namespace sdd {

// The dtype every op computes and returns in: fp64 stays fp64; fp16 / bf16 / fp32 give fp32
// (sdd_fast/core/options.py states the same rule for the fake kernels and the reference).
inline at::ScalarType compute_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

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

// Checks that `t` lies on `ref`'s device (labels on another device would be read as garbage).
void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& ref, const char* ref_name);

// Checks int64 labels of `shape`, naming them `name`; value range is checked by the kernels
// (on CPU here, against `k`).
void check_labels_tensor(const at::Tensor& labels, const char* name, at::IntArrayRef shape);

// Checks that every label in labels[..., :valid] is in [0, k) (CPU tensors only: on a GPU that
// needs a host sync, so the CUDA kernels instead return NaN for a problem with a bad label).
void check_label_range(const at::Tensor& labels, int64_t k, const char* name);

// ---- input checks of the building-block ops (shared by every backend) ----------------------
// kmeans: x [P, M, d] floating, M >= k, d >= 1; returns the parsed options.
KmeansOptions check_kmeans_inputs(const at::Tensor& x, int64_t k, int64_t iters, double tol, int64_t n_init,
                                  const std::string& seeding, int64_t seed);

// cluster_singular_sum(_backward): x [P, M, d] floating, labels [P, M] int64 in [0, k), k >= 1.
void check_cluster_inputs(const at::Tensor& x, const at::Tensor& labels, int64_t k);

// effective_rank(_backward): y [Q, R, d] floating with R, d >= 1.
void check_effective_rank_input(const at::Tensor& y);

// inter_cluster_distance(_backward): x [P, M, d], centroids [P, k, d], labels [P, M] in [0, k).
// Returns the compute dtype of the pair (fp64 when either is fp64, else fp32).
at::ScalarType check_inter_inputs(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& labels);

// dse_backward's inputs: shapes, dtypes and devices of the forward's constants; on the CPU also
// their ranges (labels in [0, k), other in [-1, global_k), perm in [0, N)), since the kernels
// index with them. Returns the problem's shape.
DseShape check_dse_backward_inputs(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                                   const at::Tensor& local_labels, const at::Tensor& global_labels,
                                   const at::Tensor& centroids, const at::Tensor& other, const at::Tensor& perm,
                                   int64_t local_k, int64_t global_k, int64_t group);

// The dse options parsed and checked with feats and labels (check_dse_inputs).
DseOptions make_dse_options(int64_t local_k, int64_t global_k, int64_t group, int64_t iters, double tol,
                            int64_t n_init, const std::string& seeding, int64_t seed);

}  // namespace sdd
