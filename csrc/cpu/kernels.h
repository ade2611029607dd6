// Per-problem CPU routines shared by the building-block ops and the fused `dse` kernel.
//
// Each routine solves ONE problem on contiguous memory; callers parallelise over problems
// with at::parallel_for. `x` is always a contiguous [M, d] tensor of float or double.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "../common/philox.h"
#include "../inputs/options.h"

namespace sdd {
namespace cpu {

// ---- k-means ---------------------------------------------------------------------------
// Lloyd's k-means after k-means++ seeding (SPEC "k-means"). Writes centroids [k, d],
// labels [M] and returns the inertia. Draws come from (seed, stream, problem).
double kmeans_problem(const at::Tensor& x, const KmeansOptions& options,
                      common::RandomStream stream, int64_t problem, at::Tensor& centroids,
                      int64_t* labels);

// Means of labelled clusters: centroids [k, d] (zero rows for empty clusters), counts [k].
void cluster_means(const at::Tensor& x, const int64_t* labels, int64_t k, at::Tensor& centroids,
                   std::vector<int64_t>& counts);

// ---- centered singular sums (batched over problems) -----------------------------------------
// Problem p: points xs[p] [M_p, d] with labels[p][0 .. M_p). values[p * k + c] = S(cluster c
// of p) (0 when it has < 2 points), counts[p * k + c] = its size.
void cluster_singular_sums(const std::vector<at::Tensor>& xs, const std::vector<const int64_t*>& labels,
                           int64_t k, double* values, int64_t* counts);

// grad_xs[p][i] += grad_values[p * k + label] * d S(cluster) / d x_i (clusters of >= 2 points).
void cluster_singular_sums_backward(const std::vector<at::Tensor>& xs, const std::vector<const int64_t*>& labels,
                                    int64_t k, const double* grad_values, std::vector<at::Tensor>& grad_xs);

// ---- effective rank (batched) -------------------------------------------------------------
// out[q] = exp(H(sigma / sum sigma + eps)) / min(R, d) of y[q], y [Q, R, d].
void effective_ranks(const at::Tensor& y, double* out);

// grad_y[q] += grad[q] * d erank(y[q]) / d y[q].
void effective_ranks_backward(const at::Tensor& y, const double* grad, at::Tensor& grad_y);

// ---- distance to the nearest other centroid ---------------------------------------------
// For each point i: other[i] = the nearest centroid other than labels[i] among those with
// usable[c] (all when `usable` is empty), or -1 when there is none. Returns the mean over
// points of || x_i - centroid[other_i] || (0 for points with no other centroid).
double nearest_other_centroid(const at::Tensor& x, const at::Tensor& centroids,
                              const int64_t* labels, const std::vector<bool>& usable,
                              int64_t* other);

// grad_x[i] += grad_mean / M * u_i and grad_centroids[other_i] -= grad_mean / M * u_i with
// u_i the unit vector from centroid[other_i] to x_i. grad_centroids may be undefined.
void nearest_other_centroid_backward(const at::Tensor& x, const at::Tensor& centroids,
                                     const int64_t* other, double grad_mean, at::Tensor& grad_x,
                                     at::Tensor* grad_centroids);

// ---- randomness -----------------------------------------------------------------------
// perm[b, :] = a random permutation of 0..N-1 for every image b, from (seed, b).
void patch_permutation(int64_t seed, int64_t batch, int64_t patches, int64_t* perm);

}  // namespace cpu
}  // namespace sdd
