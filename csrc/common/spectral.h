// Spectral quantities from the eigenvalues of a small Gram or covariance matrix.
//
// For a matrix A (rows x cols) the eigenvalues lambda of A A^T (or A^T A, whichever is
// smaller) are the squared singular values of A. Everything the metric needs from A is a
// function of them; the functions here are shared by the CPU and CUDA kernels.
#pragma once

#include <cmath>
#include <cstdint>

#include "philox.h"  // SDD_HOST_DEVICE

namespace sdd {
namespace common {

constexpr double kEntropyEps = 1e-12;      // p = sigma / sum(sigma) + eps (SPEC step 6)
constexpr double kDenominatorEps = 1e-12;  // every other denominator is clamped here

// Eigenvalues at or under this fraction of the largest are treated as exact zeros, forward and
// backward: their singular vectors are ill-defined and 1/sigma would explode. Every Gram is
// formed and solved in fp64 (CPU and CUDA, whatever the input dtype), hence one fp64 cut.
constexpr double kDegenerateEigenvalueFraction = 1e-12;

// Normaliser of the centered singular sum of n points in d dimensions: sqrt(max(n - 1, d)).
SDD_HOST_DEVICE double singular_sum_scale(int64_t n, int64_t d) {
  return sqrt(static_cast<double>(n - 1 > d ? n - 1 : d));
}

// True when an eigenvalue is NaN (a non-finite matrix): the spectral functions then return NaN,
// not a value computed from the finite rest.
SDD_HOST_DEVICE bool any_nan(const double* eigenvalues, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (eigenvalues[i] != eigenvalues[i]) return true;
  }
  return false;
}

SDD_HOST_DEVICE double largest_eigenvalue(const double* eigenvalues, int64_t count) {
  double largest = 0.0;
  for (int64_t i = 0; i < count; ++i) largest = eigenvalues[i] > largest ? eigenvalues[i] : largest;
  return largest;
}

// sigma_i, with eigenvalues at or under kDegenerateEigenvalueFraction of the largest read as
// exact zeros: they are rounding noise of a (near) rank-deficient Gram, and sqrt would amplify
// that noise from ~1e-16 to ~1e-8 (fp64). Forward and backward use the same cut.
SDD_HOST_DEVICE double clean_singular_value(double eigenvalue, double largest) {
  return eigenvalue > kDegenerateEigenvalueFraction * largest ? sqrt(eigenvalue) : 0.0;
}

// sum(sigma) from `count` eigenvalues.
SDD_HOST_DEVICE double sum_singular_values(const double* eigenvalues, int64_t count) {
  if (any_nan(eigenvalues, count)) return NAN;
  const double largest = largest_eigenvalue(eigenvalues, count);
  double total = 0.0;
  for (int64_t i = 0; i < count; ++i) total += clean_singular_value(eigenvalues[i], largest);
  return total;
}

// Effective rank exp(H(p)) / min(rows, cols), p = sigma / sum(sigma) + eps, from the
// min(rows, cols) eigenvalues of the smaller Gram.
SDD_HOST_DEVICE double effective_rank_from_eigenvalues(const double* eigenvalues, int64_t count) {
  if (any_nan(eigenvalues, count)) return NAN;
  const double largest = largest_eigenvalue(eigenvalues, count);
  double total = sum_singular_values(eigenvalues, count);
  total = total > kDenominatorEps ? total : kDenominatorEps;
  double entropy = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    const double p = clean_singular_value(eigenvalues[i], largest) / total + kEntropyEps;
    entropy -= p * log(p);
  }
  return exp(entropy) / static_cast<double>(count);
}

// Backward weights of sum(sigma): d sum(sigma) / d A = U diag(w) U^T A with w = 1 / sigma
// (Gram side) -- written into `weights`; degenerate directions get 0.
SDD_HOST_DEVICE void singular_sum_backward_weights(const double* eigenvalues, int64_t count, double* weights) {
  const double largest = largest_eigenvalue(eigenvalues, count);
  const bool nan = any_nan(eigenvalues, count);
  for (int64_t i = 0; i < count; ++i) {
    const double sigma = clean_singular_value(eigenvalues[i], largest);
    weights[i] = nan ? NAN : sigma > 0.0 ? 1.0 / sigma : 0.0;
  }
}

// Backward weights of the effective rank: d erank / d A = U diag(w) U^T A with
// w_j = (d erank / d sigma_j) / sigma_j. With T = sum(sigma) and p = sigma / T + eps:
//   d erank / d sigma_j = erank * (-log p_j + sum_i (sigma_i / T) log p_i) / T.
SDD_HOST_DEVICE void effective_rank_backward_weights(const double* eigenvalues, int64_t count, double* weights) {
  if (any_nan(eigenvalues, count)) {
    for (int64_t i = 0; i < count; ++i) weights[i] = NAN;
    return;
  }
  const double total = sum_singular_values(eigenvalues, count);
  const double largest = largest_eigenvalue(eigenvalues, count);
  if (!(total > kDenominatorEps) || !(largest > 0.0)) {  // all-zero matrix: no direction
    for (int64_t i = 0; i < count; ++i) weights[i] = 0.0;
    return;
  }
  const double erank = effective_rank_from_eigenvalues(eigenvalues, count);
  double mean_log = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    const double sigma = clean_singular_value(eigenvalues[i], largest);
    mean_log += sigma / total * log(sigma / total + kEntropyEps);
  }
  for (int64_t i = 0; i < count; ++i) {
    const double sigma = clean_singular_value(eigenvalues[i], largest);
    const double d_sigma = erank * (-log(sigma / total + kEntropyEps) + mean_log) / total;
    weights[i] = sigma > 0.0 ? d_sigma / sigma : 0.0;
  }
}

}  // namespace common
}  // namespace sdd
