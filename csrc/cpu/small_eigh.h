// Batched eigen-decomposition of the smaller Gram of many small matrices.
//
// For A [r, C] the smaller Gram is A A^T [r, r] (r <= C) or A^T A [C, C]. Matrices are
// bucketed by padded size (zero rows add only zero eigenvalues); every bucket is one float64
// bmm, then batched float64 LAPACK calls on equal slices of it, one slice per ATen thread
// (batched LAPACK is serial; inside at::parallel_for, MKL runs single-threaded, so the cores
// are not oversubscribed).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace sdd {
namespace cpu {

struct SmallSideSpectrum {
  at::Tensor eigenvalues;   // float64 [m] (ascending); m = padded size of the smaller side
  at::Tensor eigenvectors;  // float64 [m, m] (undefined unless requested)
  bool gram;                // true: A A^T (rows <= cols); false: A^T A
  int64_t padded_rows;      // rows of the zero-padded A the Gram was formed from
  double degenerate_fraction;  // eigenvalues <= this * largest are zeros (float64 rounding)
};

// Spectra of every matrix in `mats` (each [r_i, C] float64, contiguous, same C).
std::vector<SmallSideSpectrum> small_side_spectra(const std::vector<at::Tensor>& mats, bool with_vectors);

// Per matrix i: the weights w (one per eigenvalue) and scale of a spectral function whose
// derivative per singular value is w_j * sigma_j.
using SpectralWeightFn = std::function<void(int64_t i, const SmallSideSpectrum& spectrum,
                                            std::vector<double>& weights, double& scale)>;

// grads[i] += scale_i * (gram ? U diag(w_i) U^T A_i : A_i V diag(w_i) V^T) for every matrix,
// batched like small_side_spectra (grads[i] has A_i's shape and dtype).
void add_spectral_gradients(const std::vector<at::Tensor>& mats, const SpectralWeightFn& weight_fn,
                            std::vector<at::Tensor>& grads);

}  // namespace cpu
}  // namespace sdd
