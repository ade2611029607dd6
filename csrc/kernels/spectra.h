// Centered singular sums of labelled clusters and effective ranks, forward and backward, from
// the eigen-decomposition of each matrix's smaller Gram (A A^T, n x n, when n <= d; else the
// covariance A^T A, d x d), built and solved in fp64 by one block per matrix (jacobi.h). The
// epilogues (sums of singular values, spectral entropy, backward weights) are the functions of
// csrc/common/spectral.h that the CPU kernels use too.
//
// Workspace: a problem of M points in d channels gets M * d doubles per buffer; since every
// cluster's smaller side m_c = min(n_c, d) <= n_c, the m_c^2 matrices of its clusters fit too.
#pragma once

#include <cmath>
#include <cstdint>

#include "../common/spectral.h"
#include "block.h"
#include "jacobi.h"
#include "kmeans.h"  // count_bad_labels

namespace sdd {
namespace kernels {

// ---- sorting points by cluster --------------------------------------------------------------
struct ClusterSortArgs {
  const int64_t* labels;  // [P, M]
  int64_t M, k, total, d;
  int64_t* counts;        // [P, k]   cluster sizes (all 0 for a problem with a bad label)
  int64_t* offsets;       // [P, k + 1] start of every cluster in `order`
  int64_t* order;         // [P, M]   point indices, cluster by cluster, ascending within one
  int64_t* matrix_offsets;  // [P, k] start of the cluster's m x m matrix in a problem's region
  int64_t* cursor;        // [P, k]   workspace
  int64_t* bad;           // [P]      1 when a label lies outside [0, k)
};

inline int64_t cluster_sort_shared_bytes() {
  return shared_size<double>(kReduceScratch) + shared_size<int64_t>(kThreads);
}

// One block per problem. Stable: point i precedes point j of the same cluster when i < j.
struct ClusterSortKernel {
  using Args = ClusterSortArgs;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t p = b.block_x(), k = a.k;
    const int64_t n = problem_size(p, a.M, a.total);
    const int64_t* labels = a.labels + p * a.M;
    int64_t* counts = a.counts + p * k;
    int64_t* offsets = a.offsets + p * (k + 1);
    int64_t* cursor = a.cursor + p * k;
    SharedCursor shared(b.shared_bytes());
    double* scratch = shared.take<double>(kReduceScratch);
    int64_t* chunk = shared.take<int64_t>(kThreads);
    const bool bad = count_bad_labels(b, labels, n, k, scratch) > 0.0;
    for (int64_t c = b.thread(); c < k; c += b.threads()) {
      int64_t count = 0;
      for (int64_t i = 0; i < n && !bad; ++i) count += labels[i] == c;
      counts[c] = count;
      cursor[c] = 0;
    }
    b.sync();
    if (b.thread() == 0) {
      a.bad[p] = bad ? 1 : 0;
      int64_t start = 0, matrix = 0;
      for (int64_t c = 0; c < k; ++c) {
        offsets[c] = start;
        start += counts[c];
        const int64_t m = counts[c] >= 2 ? min_of(counts[c], a.d) : 0;
        a.matrix_offsets[p * k + c] = matrix;
        matrix += m * m;
      }
      offsets[k] = start;
    }
    b.sync();
    if (bad) return;  // uniform over the block
    for (int64_t base = 0; base < n; base += b.threads()) {
      const int64_t i = base + b.thread();
      const int64_t label = i < n ? labels[i] : -1;
      chunk[b.thread()] = label;
      b.sync();
      int64_t before = 0;
      bool last = true;
      for (int t = 0; t < b.threads(); ++t) {
        if (chunk[t] != label) continue;
        if (t < b.thread()) ++before;
        if (t > b.thread()) last = false;
      }
      if (label >= 0) a.order[p * a.M + offsets[label] + cursor[label] + before] = i;
      b.sync();
      if (label >= 0 && last) cursor[label] += before + 1;
      b.sync();
    }
  }
};

// ---- shared pieces of the spectral kernels --------------------------------------------------
// G = A A^T (n x n) when gram, else A^T A (d x d); A is n x d row-major (element type S).
template <class Block, class S>
SDD_KERNEL void smaller_gram(Block& b, const S* A, int64_t n, int64_t d, bool gram, double* G) {
  const int64_t m = gram ? n : d;
  for (int64_t e = b.thread(); e < m * m; e += b.threads()) {
    const int64_t r = e / m, c = e % m;
    if (c < r) continue;
    double s = 0.0;
    if (gram) {
      for (int64_t j = 0; j < d; ++j) s += static_cast<double>(A[r * d + j]) * static_cast<double>(A[c * d + j]);
    } else {
      for (int64_t i = 0; i < n; ++i) s += static_cast<double>(A[i * d + r]) * static_cast<double>(A[i * d + c]);
    }
    G[r * m + c] = s;
    G[c * m + r] = s;
  }
  b.sync();
}

// eig[i] = G[i, i] (m values). Ends with a sync.
template <class Block>
SDD_KERNEL void take_diagonal(Block& b, const double* G, int64_t m, double* eig) {
  for (int64_t i = b.thread(); i < m; i += b.threads()) eig[i] = G[i * m + i];
  b.sync();
}

// K = V diag(w) V^T = sum_l w_l v_l v_l^T into K (m x m), v_l = row l of vt. Ends with a sync.
template <class Block>
SDD_KERNEL void spectral_kernel_matrix(Block& b, const double* vt, const double* w, int64_t m, double* K) {
  for (int64_t e = b.thread(); e < m * m; e += b.threads()) {
    const int64_t r = e / m, c = e % m;
    double s = 0.0;
    for (int64_t l = 0; l < m; ++l) s += vt[l * m + r] * w[l] * vt[l * m + c];
    K[e] = s;
  }
  b.sync();
}

// out (n x d) = K A when gram (K n x n), else A K (K d x d). Ends with a sync.
template <class Block, class S>
SDD_KERNEL void apply_kernel_matrix(Block& b, const double* K, const S* A, int64_t n, int64_t d, bool gram,
                                    double* out) {
  for (int64_t e = b.thread(); e < n * d; e += b.threads()) {
    const int64_t r = e / d, j = e % d;
    double s = 0.0;
    if (gram) {
      for (int64_t l = 0; l < n; ++l) s += K[r * n + l] * static_cast<double>(A[l * d + j]);
    } else {
      for (int64_t l = 0; l < d; ++l) s += static_cast<double>(A[r * d + l]) * K[l * d + j];
    }
    out[e] = s;
  }
  b.sync();
}

// Matrices up to this size are diagonalised in shared memory (two buffers, 64 KB in fp64: three
// blocks fit an H100/H200 multiprocessor); larger ones in the global workspace.
constexpr int64_t kSharedMatrixCap = 64;

SDD_HOST_DEVICE int64_t shared_matrix_cap(int64_t m_max) { return m_max < kSharedMatrixCap ? m_max : kSharedMatrixCap; }

// Shared memory of a spectral launch with matrices up to m_max.
inline int64_t spectral_shared_bytes(int64_t m_max) {
  const int64_t cap = shared_matrix_cap(m_max);
  return shared_size<double>(kReduceScratch) + 2 * shared_size<double>(m_max) + jacobi_shared_bytes(m_max) +
         2 * shared_size<double>(cap * cap);
}

// ---- centered singular sums of clusters ----------------------------------------------------
template <class T>
struct ClusterSpectraArgs {
  const T* x;                      // [P, M, d]
  int64_t M, d, k, m_max;
  const int64_t* counts;           // [P, k]
  const int64_t* offsets;          // [P, k + 1]
  const int64_t* order;            // [P, M]
  const int64_t* matrix_offsets;   // [P, k]
  double* rows;                    // [P, M, d] centered cluster rows, cluster by cluster
  double* grams;                   // [P, 2 * M * d] the clusters' matrices, two buffers each
  double* vectors;                 // [P, M * d] eigenvectors (backward only)
  double* values;                  // [P, k]     forward: S(cluster), 0 for clusters of < 2 points
  const double* grad_values;       // [P, k]     backward: d loss / d S(cluster)
  double* grad_rows;               // [P, M, d]  backward workspace
  T* grad_x;                       // [P, M, d]  backward: += gradient (rows of clusters >= 2 points)
};

// One block per (cluster, problem): grid (k, P). forward: values; backward: grad_x.
template <class T, bool kBackward>
struct ClusterSpectraKernel {
  using Args = ClusterSpectraArgs<T>;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t c = b.block_x(), p = b.block_y(), d = a.d, k = a.k;
    const int64_t n = a.counts[p * k + c];
    if (!kBackward && b.thread() == 0) a.values[p * k + c] = 0.0;
    if (n < 2) return;  // uniform over the block
    const int64_t begin = a.offsets[p * (k + 1) + c];
    const int64_t* order = a.order + p * a.M + begin;
    const T* x = a.x + p * a.M * d;
    double* A = a.rows + (p * a.M + begin) * d;
    const bool gram = n <= d;
    const int64_t m = gram ? n : d;
    double* G = a.grams + p * 2 * a.M * d + 2 * a.matrix_offsets[p * k + c];  // [2, m, m]
    double* V = kBackward ? a.vectors + p * a.M * d + a.matrix_offsets[p * k + c] : nullptr;
    SharedCursor shared(b.shared_bytes());
    double* scratch = shared.take<double>(kReduceScratch);
    double* eig = shared.take<double>(a.m_max);
    double* w = shared.take<double>(a.m_max);
    const JacobiScratch js = JacobiScratch::take(shared, a.m_max);
    const int64_t cap = shared_matrix_cap(a.m_max);
    double* S = m <= cap ? shared.take<double>(2 * cap * cap) : G;  // the two buffers of the Jacobi

    // gather in fp64 and center: a cluster mean in fp32 would leave a rounding direction of
    // ~1e-7 * ||mean|| that the spectrum reads as a singular value
    for (int64_t e = b.thread(); e < n * d; e += b.threads()) A[e] = static_cast<double>(x[order[e / d] * d + e % d]);
    b.sync();
    center_columns(b, A, n, d);
    smaller_gram(b, A, n, d, gram, S);
    take_diagonal(b, jacobi_eigen(b, S, S + m * m, V, m, js, scratch), m, eig);
    const double norm = common::singular_sum_scale(n, d);
    if (!kBackward) {
      if (b.thread() == 0) a.values[p * k + c] = common::sum_singular_values(eig, m) / norm;
      return;
    }
    if (b.thread() == 0) {
      common::singular_sum_backward_weights(eig, m, w);
      const double scale = a.grad_values[p * k + c] / norm;
      for (int64_t i = 0; i < m; ++i) w[i] *= scale;
    }
    b.sync();
    spectral_kernel_matrix(b, V, w, m, G);  // G is free once eig holds the eigenvalues
    double* grad = a.grad_rows + (p * a.M + begin) * d;
    apply_kernel_matrix(b, G, A, n, d, gram, grad);
    center_columns(b, grad, n, d);  // through the centering: project out the cluster mean
    for (int64_t e = b.thread(); e < n * d; e += b.threads()) {
      T& out = a.grad_x[p * a.M * d + order[e / d] * d + e % d];
      out = static_cast<T>(static_cast<double>(out) + grad[e]);
    }
  }

 private:
  // Subtracts each column's mean (over n rows, in row order). Ends with a sync.
  template <class Block>
  SDD_KERNEL static void center_columns(Block& b, double* A, int64_t n, int64_t d) {
    for (int64_t j = b.thread(); j < d; j += b.threads()) {
      double mean = 0.0;
      for (int64_t i = 0; i < n; ++i) mean += A[i * d + j];
      mean /= static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) A[i * d + j] -= mean;
    }
    b.sync();
  }
};

// ---- effective rank ------------------------------------------------------------------------
template <class T>
struct EffectiveRankArgs {
  const T* y;             // [Q, R, d]
  int64_t R, d, m_max;    // m_max = min(R, d)
  double* grams;          // [Q, 2, m, m] two buffers per matrix
  double* vectors;        // [Q, m, m] (backward only)
  double* ranks;          // [Q] forward
  const double* grad;     // [Q] backward
  double* grad_rows;      // [Q, R, d] backward workspace
  T* grad_y;              // [Q, R, d] backward output (written)
};

// One block per matrix: grid (Q).
template <class T, bool kBackward>
struct EffectiveRankKernel {
  using Args = EffectiveRankArgs<T>;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t q = b.block_x(), R = a.R, d = a.d, m = a.m_max;
    const bool gram = R <= d;
    const T* Y = a.y + q * R * d;
    double* G = a.grams + q * 2 * m * m;
    double* V = kBackward ? a.vectors + q * m * m : nullptr;
    SharedCursor shared(b.shared_bytes());
    double* scratch = shared.take<double>(kReduceScratch);
    double* eig = shared.take<double>(m);
    double* w = shared.take<double>(m);
    const JacobiScratch js = JacobiScratch::take(shared, m);
    double* S = m <= kSharedMatrixCap ? shared.take<double>(2 * m * m) : G;  // the two buffers of the Jacobi
    smaller_gram(b, Y, R, d, gram, S);
    take_diagonal(b, jacobi_eigen(b, S, S + m * m, V, m, js, scratch), m, eig);
    if (!kBackward) {
      if (b.thread() == 0) a.ranks[q] = common::effective_rank_from_eigenvalues(eig, m);
      return;
    }
    if (b.thread() == 0) {
      common::effective_rank_backward_weights(eig, m, w);
      for (int64_t i = 0; i < m; ++i) w[i] *= a.grad[q];
    }
    b.sync();
    spectral_kernel_matrix(b, V, w, m, G);
    double* grad = a.grad_rows + q * R * d;
    apply_kernel_matrix(b, G, Y, R, d, gram, grad);
    for (int64_t e = b.thread(); e < R * d; e += b.threads()) a.grad_y[q * R * d + e] = static_cast<T>(grad[e]);
  }
};

}  // namespace kernels
}  // namespace sdd
