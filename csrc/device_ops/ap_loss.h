// Host side of the continuous-target AP loss kernels (csrc/kernels/ap_loss.h) for every Backend.
// The device kernel is the tiled pairwise one whatever `algorithm` asks: the sorted O(C log C)
// variant is the CPU's (same values to rounding).
#pragma once

#include <ATen/ATen.h>

#include "../inputs/ap_loss.h"
#include "../inputs/options.h"
#include "../kernels/ap_loss.h"

namespace sdd {
namespace device_ops {

inline kernels::ApLossArgs ap_loss_args(const ApLossInputs& in) {
  return {in.s.data_ptr<double>(), in.t.data_ptr<double>(), in.scale.defined() ? in.scale.data_ptr<double>() : nullptr,
          in.s.size(1), in.options.theta, in.options.lam, in.options.tau, in.options.hard_step,
          nullptr, nullptr, nullptr, nullptr};
}

// scores, targets, weight_scale [A, C] -> per-anchor losses [A] (compute dtype of scores)
template <class Backend>
at::Tensor continuous_ap_loss_op(const at::Tensor& scores, const at::Tensor& targets,
                                 const c10::optional<at::Tensor>& weight_scale, double theta, double lam, double tau,
                                 bool hard_step, c10::string_view algorithm) {
  const ApLossInputs in =
      prepare_ap_loss_inputs(scores, targets, weight_scale, theta, lam, tau, hard_step, algorithm);
  const typename Backend::Guard guard(scores.device());
  at::Tensor loss = at::empty({in.s.size(0)}, in.s.options());
  kernels::ApLossArgs args = ap_loss_args(in);
  args.loss = loss.data_ptr<double>();
  Backend::template launch<kernels::ApLossForwardKernel>({in.s.size(0), 1}, kernels::ap_loss_shared_bytes(), args);
  return loss.to(compute_dtype(scores));
}

// grad [A] -> d (sum_a grad[a] loss[a]) / d scores [A, C] (dtype of scores)
template <class Backend>
at::Tensor continuous_ap_loss_backward_op(const at::Tensor& grad, const at::Tensor& scores, const at::Tensor& targets,
                                          const c10::optional<at::Tensor>& weight_scale, double theta, double lam,
                                          double tau, bool hard_step, c10::string_view algorithm) {
  const ApLossInputs in =
      prepare_ap_loss_inputs(scores, targets, weight_scale, theta, lam, tau, hard_step, algorithm);
  const int64_t A = in.s.size(0);
  TORCH_CHECK_VALUE(grad.dim() == 1 && grad.size(0) == A, "grad must have shape [", A, "]; got ", grad.sizes());
  const typename Backend::Guard guard(scores.device());
  const at::Tensor g = grad.to(at::kDouble).contiguous();
  at::Tensor coef = at::empty_like(in.s), grad_scores = at::empty_like(in.s);
  kernels::ApLossArgs args = ap_loss_args(in);
  args.grad = g.data_ptr<double>();
  args.coef = coef.data_ptr<double>();
  args.grad_scores = grad_scores.data_ptr<double>();
  Backend::template launch<kernels::ApLossBackwardKernel>({A, 1}, kernels::ap_loss_shared_bytes(), args);
  return grad_scores.to(scores.scalar_type());
}

}  // namespace device_ops
}  // namespace sdd
