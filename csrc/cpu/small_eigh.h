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

// Eigenvalues (float64 [m], ascending; m = padded size of the smaller side) of every matrix in
// `mats` (each [r_i, C] float64, contiguous, same C).
std::vector<at::Tensor> small_side_eigenvalues(const std::vector<at::Tensor>& mats);

// Per matrix i: the weights w (one per eigenvalue) and scale of a spectral function whose
// derivative per singular value is w_j * sigma_j.
using SpectralWeightFn = std::function<void(int64_t i, const at::Tensor& eigenvalues, std::vector<double>& weights,
                                            double& scale)>;

// grads[i] += scale_i * (gram ? U diag(w_i) U^T A_i : A_i V diag(w_i) V^T) for every matrix,
// batched like small_side_eigenvalues (grads[i] has A_i's shape and dtype).
void add_spectral_gradients(const std::vector<at::Tensor>& mats, const SpectralWeightFn& weight_fn,
                            std::vector<at::Tensor>& grads);

}  // namespace cpu
}  // namespace sdd
