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
#include "small_eigh.h"  // KeptSpectra

namespace sdd {
namespace cpu {

// ---- k-means ---------------------------------------------------------------------------
// Each point's nearest centroid other than its own, as nearest_other_centroid gives it for the
// k-means' centroids and labels (the same indices and mean, bit for bit).
struct NearestOthers {
  int64_t* index;     // [M] written: the nearest other centroid, -1 when k == 1
  double mean = 0.0;  // written: the mean over points of the distance to it
};

// Lloyd's k-means after k-means++ seeding (SPEC "k-means"). Writes centroids [k, d],
// labels [M] and returns the inertia (NaN when not asked for and n_init is 1: a pass over the
// points saved). Draws come from (seed, stream, problem). norms [M]: the rows' squared norms
// (sum_of_squares) when the caller has them, else taken here. With `others`, the nearest other
// centroids too, from the distance bounds the Lloyd loop keeps (most distances are never taken).
double kmeans_problem(const at::Tensor& x, const KmeansOptions& options,
                      common::RandomStream stream, int64_t problem, at::Tensor& centroids,
                      int64_t* labels, bool want_inertia = true, const double* norms = nullptr,
                      NearestOthers* others = nullptr);

// dots [r, n] (contiguous) <- rows [r, d] . the points x[points[j]] (points null: x's first n rows),
// x [M, d]: row_dots in float32 (the points read where they lie, no GEMM packing), gathered points
// and BLAS in float64. The k-means distances and the inter-cluster distance's take them.
void point_dots(const at::Tensor& rows, const at::Tensor& x, const int64_t* points, int64_t n, at::Tensor& dots);

// Means of labelled clusters: centroids [k, d] (zero rows for empty clusters), counts [k].
void cluster_means(const at::Tensor& x, const int64_t* labels, int64_t k, at::Tensor& centroids,
                   std::vector<int64_t>& counts);

// ---- centered singular sums (batched over problems) -----------------------------------------
// Problem p: the points table[first_row[p] .. first_row[p] + points[p]) with labels[p][0 .. points[p]).
struct ClusterProblems {
  at::Tensor table;  // [T, d] float or double, contiguous
  std::vector<int64_t> first_row, points;
  std::vector<const int64_t*> labels;
  int64_t k;

  // x [P, M, d] (contiguous) with labels [P, M] (contiguous): one problem per row.
  static ClusterProblems batched(const at::Tensor& x, const at::Tensor& labels, int64_t k) {
    const int64_t P = x.size(0), M = x.size(1);
    ClusterProblems out{x.view({P * M, x.size(2)}), {}, {}, {}, k};
    for (int64_t p = 0; p < P; ++p) {
      out.first_row.push_back(p * M);
      out.points.push_back(M);
      out.labels.push_back(labels.data_ptr<int64_t>() + p * M);
    }
    return out;
  }
};

// values[p * k + c] = S(cluster c of p) (0 when it has < 2 points), counts[p * k + c] = its size.
// With `keep`, the clusters' eigenvectors are kept for cluster_singular_sums_backward.
void cluster_singular_sums(const ClusterProblems& problems, double* values, int64_t* counts,
                           KeptSpectra* keep = nullptr);
// The same as a job for for_each_spectrum (small_eigh.h), to share one parallel region with other
// spectra: counts are written now, values (zeroed now) as the job runs.
SpectrumJob cluster_singular_sums_job(const ClusterProblems& problems, double* values, int64_t* counts,
                                      KeptSpectra* keep = nullptr);
// One job for several sets of problems on one table (both levels of a dse forward): their clusters are
// solved together, sorted by size across the sets (fuller lane groups than a job per set; values agree
// with separate jobs' to rounding). Each set's values [P, k] and counts [P, k] as above.
struct ClusterSums {
  const ClusterProblems* problems;
  double* values;
  int64_t* counts;
};
SpectrumJob cluster_singular_sums_job(const std::vector<ClusterSums>& sets, KeptSpectra* keep = nullptr);

// grad_table[rows of cluster c of p] += grad_values[p * k + c] * d S(cluster) / d rows (clusters of >= 2 points).
// values [P, k], if given: S(cluster) from the backward's own spectra (the kept ones, or LAPACK's), for the
// clusters with a gradient (all of >= 2 points with `kept`); 0 elsewhere.
void cluster_singular_sums_backward(const ClusterProblems& problems, const double* grad_values,
                                    at::Tensor& grad_table, const KeptSpectra* kept = nullptr,
                                    double* values = nullptr);

// ---- effective rank (batched) -------------------------------------------------------------
// Matrix q is the R rows table[rows[q * R + r]] (r < R) of table [T, d]:
// out[q] = exp(H(sigma / sum sigma + eps)) / min(R, d).
void effective_ranks(const at::Tensor& table, const std::vector<int64_t>& rows, int64_t R, double* out,
                     KeptSpectra* keep = nullptr);
// The same as a job for for_each_spectrum: out is written as the job runs.
SpectrumJob effective_ranks_job(const at::Tensor& table, const std::vector<int64_t>& rows, int64_t R, double* out,
                                KeptSpectra* keep = nullptr);

// grad_table[rows of q] += grad[q] * d erank(matrix q) / d rows (no row in two matrices).
void effective_ranks_backward(const at::Tensor& table, const std::vector<int64_t>& rows, int64_t R,
                              const double* grad, at::Tensor& grad_table, const KeptSpectra* kept = nullptr);

// ---- distance to the nearest other centroid ---------------------------------------------
// For each point i: other[i] = the nearest centroid other than labels[i] among those with
// usable[c] (all when `usable` is empty), or -1 when there is none: by float64 distance
// (squared_distance; ties: the lowest index), the candidates found from float32 products and their
// error bound. Returns the mean over points of || x_i - centroid[other_i] || (0 for points with no
// other centroid).
double nearest_other_centroid(const at::Tensor& x, const at::Tensor& centroids,
                              const int64_t* labels, const std::vector<bool>& usable,
                              int64_t* other);

// The same for the points `points` (nullptr: 0 .. n - 1) of x [M, d] from their products with the
// centroids, dots [k, n] (point_dots), and x_norms [M] their squared norms: other[i] <- the nearest
// other centroid (-1: none), distance[i] <- the distance to it (0: none).
void nearest_others_from_products(const at::Tensor& x, const double* x_norms, const at::Tensor& centroids,
                                  const int64_t* labels, const std::vector<bool>& usable, const int64_t* points,
                                  int64_t n, const at::Tensor& dots, int64_t* other, double* distance);

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
