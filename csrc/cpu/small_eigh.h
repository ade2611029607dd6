// Eigen-decomposition of the smaller of a matrix's two Gram matrices, in float64.
#pragma once

#include <ATen/core/Tensor.h>

namespace sdd {
namespace cpu {

struct SmallSideSpectrum {
  at::Tensor eigenvalues;   // float64 [m], ascending; m = min(rows, cols)
  at::Tensor eigenvectors;  // float64 [m, m] (undefined unless requested)
  bool gram;                // true: A A^T (rows <= cols); false: A^T A
  double degenerate_fraction;  // eigenvalues <= this * largest are zeros (by A's dtype)
};

// Eigenpairs of A A^T [R, R] when R <= C, else of A^T A [C, C], for a [R, C] matrix A.
// The product is formed in A's dtype (BLAS, no TF32 on CPU), the solve in float64.
SmallSideSpectrum small_side_spectrum(const at::Tensor& a, bool with_vectors);

// grad_a += scale * (gram ? U diag(w) U^T A : A V diag(w) V^T): the gradient of a spectral
// function whose derivative per singular value is w_j * sigma_j.
void add_spectral_gradient(const at::Tensor& a, const SmallSideSpectrum& spectrum,
                           const double* weights, double scale, at::Tensor& grad_a);

}  // namespace cpu
}  // namespace sdd
