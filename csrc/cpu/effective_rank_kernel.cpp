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
#include "tensor_utils.h"

namespace sdd {
namespace cpu {

namespace {

std::vector<at::Tensor> matrices(const at::Tensor& y) {
  std::vector<at::Tensor> mats;
  for (int64_t q = 0; q < y.size(0); ++q) mats.push_back(y.select(0, q));
  return mats;
}

}  // namespace

void effective_ranks(const at::Tensor& y, double* out) {
  const std::vector<at::Tensor> spectra = small_side_eigenvalues(matrices(y.to(at::kDouble)));
  const int64_t m = std::min(y.size(1), y.size(2));
  for (size_t q = 0; q < spectra.size(); ++q) {
    // Padding adds zero eigenvalues (the smallest); erank counts min(R, d) of them.
    const at::Tensor eig = spectra[q].narrow(0, spectra[q].numel() - m, m);
    out[q] = common::effective_rank_from_eigenvalues(eig.data_ptr<double>(), m);
  }
}

void effective_ranks_backward(const at::Tensor& y, const double* grad, at::Tensor& grad_y) {
  std::vector<at::Tensor> grads = matrices(grad_y);
  const int64_t m = std::min(y.size(1), y.size(2));
  add_spectral_gradients(
      matrices(y.to(at::kDouble)),
      [&](int64_t q, const at::Tensor& eigenvalues, std::vector<double>& weights, double& scale) {
        const int64_t total = eigenvalues.numel();
        weights.assign(total, 0.0);  // padding eigenvalues (the smallest) get no weight
        common::effective_rank_backward_weights(eigenvalues.data_ptr<double>() + (total - m), m,
                                                weights.data() + (total - m));
        scale = grad[q];
      },
      grads);
}



namespace {

at::Tensor checked_copy(const at::Tensor& y) {
  check_effective_rank_input(y);
  return compute_copy(y);
}

at::Tensor effective_rank_cpu(const at::Tensor& y) {
  const at::Tensor yc = checked_copy(y);
  const int64_t Q = yc.size(0);
  std::vector<double> ranks(Q);
  effective_ranks(yc, ranks.data());
  return tensor_from(ranks, yc.options());
}

at::Tensor effective_rank_backward_cpu(const at::Tensor& grad, const at::Tensor& y) {
  const at::Tensor yc = checked_copy(y);
  const at::Tensor g = grad.to(at::kDouble).contiguous();
  at::Tensor grad_y = at::zeros_like(yc);
  effective_ranks_backward(yc, g.data_ptr<double>(), grad_y);
  return grad_y.to(y.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("effective_rank", &effective_rank_cpu);
  m.impl("effective_rank_backward", &effective_rank_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
