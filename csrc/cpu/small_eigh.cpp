#include "small_eigh.h"

#include "../common/spectral.h"

#include <ATen/ATen.h>

namespace sdd {
namespace cpu {

SmallSideSpectrum small_side_spectrum(const at::Tensor& a, bool with_vectors) {
  const bool gram = a.size(0) <= a.size(1);
  const at::Tensor product = (gram ? at::mm(a, a.t()) : at::mm(a.t(), a)).to(at::kDouble);
  const double fraction = a.scalar_type() == at::kDouble ? common::degenerate_eigenvalue_fraction<double>()
                                                         : common::degenerate_eigenvalue_fraction<float>();
  if (!with_vectors) return {at::linalg_eigvalsh(product), at::Tensor(), gram, fraction};
  auto [values, vectors] = at::linalg_eigh(product);
  return {values, vectors, gram, fraction};
}

void add_spectral_gradient(const at::Tensor& a, const SmallSideSpectrum& spectrum,
                           const double* weights, double scale, at::Tensor& grad_a) {
  const int64_t m = spectrum.eigenvalues.size(0);
  const at::Tensor w = at::from_blob(const_cast<double*>(weights), {1, m}, at::kDouble);
  const at::Tensor& u = spectrum.eigenvectors;                     // [m, m]
  const at::Tensor kernel = at::mm(at::mul(u, w * scale), u.t()).to(a.scalar_type());
  grad_a.add_(spectrum.gram ? at::mm(kernel, a) : at::mm(a, kernel));
}

}  // namespace cpu
}  // namespace sdd
