// Effective rank exp(H(p)) / min(R, d), p = sigma / sum(sigma) + eps, of Q matrices [R, d]
// (not centered), from the eigenvalues of the smaller Gram.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common/spectral.h"
#include "kernels.h"
#include "small_eigh.h"

namespace sdd {
namespace cpu {

double effective_rank_matrix(const at::Tensor& y) {
  const SmallSideSpectrum spectrum = small_side_spectrum(y, false);
  return common::effective_rank_from_eigenvalues(spectrum.eigenvalues.data_ptr<double>(),
                                                 spectrum.eigenvalues.numel(), spectrum.degenerate_fraction);
}

void effective_rank_matrix_backward(const at::Tensor& y, double grad, at::Tensor& grad_y) {
  if (grad == 0.0) return;
  const SmallSideSpectrum spectrum = small_side_spectrum(y, true);
  std::vector<double> weights(spectrum.eigenvalues.numel());
  common::effective_rank_backward_weights(spectrum.eigenvalues.data_ptr<double>(), weights.size(), spectrum.degenerate_fraction,
                                          weights.data());
  add_spectral_gradient(y, spectrum, weights.data(), grad, grad_y);
}

namespace {

at::Tensor compute_copy(const at::Tensor& y) {
  check_float_tensor(y, "y", 3);
  TORCH_CHECK_VALUE(y.size(1) >= 1 && y.size(2) >= 1, "y must be [Q, R, d] with R, d >= 1; got shape ",
                    y.sizes());
  return y.to(y.scalar_type() == at::kDouble ? at::kDouble : at::kFloat).contiguous();
}

at::Tensor effective_rank_cpu(const at::Tensor& y) {
  const at::Tensor yc = compute_copy(y);
  const int64_t Q = yc.size(0);
  std::vector<double> ranks(Q);
  at::parallel_for(0, Q, 1, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) ranks[q] = effective_rank_matrix(yc.select(0, q));
  });
  at::Tensor out = at::empty({Q}, yc.options());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "sdd::effective_rank", [&] {
    std::copy(ranks.begin(), ranks.end(), out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor effective_rank_backward_cpu(const at::Tensor& grad, const at::Tensor& y) {
  const at::Tensor yc = compute_copy(y);
  const at::Tensor g = grad.to(at::kDouble).contiguous();
  at::Tensor grad_y = at::zeros_like(yc);
  at::parallel_for(0, yc.size(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      at::Tensor gq = grad_y.select(0, q);
      effective_rank_matrix_backward(yc.select(0, q), g.data_ptr<double>()[q], gq);
    }
  });
  return grad_y.to(y.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("effective_rank", &effective_rank_cpu);
  m.impl("effective_rank_backward", &effective_rank_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
