// Effective rank exp(H(p)) / min(R, d), p = sigma / sum(sigma) + eps, of Q matrices [R, d]
// (not centered), from the eigenvalues of the smaller Gram.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <memory>
#include <vector>

#include "../common/spectral.h"
#include "kernels.h"
#include "small_eigh.h"
#include "tensor_utils.h"

namespace sdd {
namespace cpu {

namespace {

RowMatrices rank_matrices(const at::Tensor& table, const std::vector<int64_t>& rows, int64_t R) {
  RowMatrices mats;
  mats.table = table;
  const int64_t Q = static_cast<int64_t>(rows.size()) / R;
  for (int64_t q = 0; q < Q; ++q) mats.add(rows.data() + q * R, R);
  return mats;
}

// Rows of y [Q, R, d] as a table [Q * R, d]: matrix q is rows q * R .. q * R + R - 1.
std::vector<int64_t> consecutive_rows(const at::Tensor& y) {
  std::vector<int64_t> rows(y.size(0) * y.size(1));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
  return rows;
}

}  // namespace

SpectrumJob effective_ranks_job(const at::Tensor& table, const std::vector<int64_t>& rows, int64_t R, double* out,
                                KeptSpectra* keep) {
  const int64_t m = std::min(R, table.size(1));
  return {std::make_shared<const RowMatrices>(rank_matrices(table, rows, R)),
          [out, m](int64_t q, const double* eig, int64_t padded) {
            // Padding adds zero eigenvalues (the smallest); erank counts min(R, d) of them.
            out[q] = common::effective_rank_from_eigenvalues(eig + (padded - m), m);
          },
          keep};
}

void effective_ranks(const at::Tensor& table, const std::vector<int64_t>& rows, int64_t R, double* out,
                     KeptSpectra* keep) {
  for_each_spectrum({effective_ranks_job(table, rows, R, out, keep)});
}

void effective_ranks_backward(const at::Tensor& table, const std::vector<int64_t>& rows, int64_t R,
                              const double* grad, at::Tensor& grad_table, const KeptSpectra* kept) {
  const int64_t m = std::min(R, table.size(1));
  add_spectral_gradients(
      rank_matrices(table, rows, R),
      [&](int64_t q, const double* eig, int64_t padded, double* weights, double& scale) {
        std::fill(weights, weights + padded, 0.0);  // padding eigenvalues (the smallest) get no weight
        common::effective_rank_backward_weights(eig + (padded - m), m, weights + (padded - m));
        scale = grad[q];
      },
      grad_table, kept);
}

namespace {

at::Tensor checked_copy(const at::Tensor& y) {
  check_effective_rank_input(y);
  return compute_copy(y);
}

at::Tensor effective_rank_cpu(const at::Tensor& y) {
  const at::Tensor yc = checked_copy(y);
  const int64_t Q = yc.size(0), R = yc.size(1);
  std::vector<double> ranks(Q);
  effective_ranks(yc.view({Q * R, yc.size(2)}), consecutive_rows(yc), R, ranks.data());
  return tensor_from(ranks, yc.options());
}

at::Tensor effective_rank_backward_cpu(const at::Tensor& grad, const at::Tensor& y) {
  const at::Tensor yc = checked_copy(y);
  const at::Tensor g = grad.to(at::kDouble).contiguous();
  at::Tensor grad_y = at::zeros_like(yc);
  at::Tensor grad_table = grad_y.view({yc.size(0) * yc.size(1), yc.size(2)});
  effective_ranks_backward(yc.view({yc.size(0) * yc.size(1), yc.size(2)}), consecutive_rows(yc), yc.size(1),
                           g.data_ptr<double>(), grad_table);
  return grad_y.to(y.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("effective_rank", &effective_rank_cpu);
  m.impl("effective_rank_backward", &effective_rank_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
