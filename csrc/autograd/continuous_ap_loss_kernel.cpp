// Autograd of sdd::continuous_ap_loss: differentiable in the scores; the targets (teacher
// similarities) and the weight scale are constants, as is every P_j (a count). The gradient is
// the op sdd::continuous_ap_loss_backward, which is not twice differentiable.
#include <ATen/core/LegacyTypeDispatch.h>  // at::AutoDispatchBelowADInplaceOrView
#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/csrc/autograd/custom_function.h>  // not <torch/autograd.h>: the CMake build links torch_cpu only
#include <torch/library.h>

#include <string>

#include "typed_op.h"

namespace sdd {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using ApLossSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, double,
                                   double, double, bool, c10::string_view);
using ApLossBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                           const c10::optional<at::Tensor>&, double, double, double, bool,
                                           c10::string_view);

class ContinuousApLossFunction : public torch::autograd::Function<ContinuousApLossFunction> {
 public:
  // scores, targets, weight_scale [A, C] -> per-anchor losses [A]
  static variable_list forward(AutogradContext* ctx, const at::Tensor& scores, const at::Tensor& targets,
                               const c10::optional<at::Tensor>& weight_scale, double theta, double lam, double tau,
                               bool hard_step, const std::string& algorithm) {
    static const auto op = typed_op<ApLossSignature>("sdd::continuous_ap_loss");
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({scores, targets, weight_scale.value_or(at::Tensor())});
    ctx->saved_data["theta"] = theta;
    ctx->saved_data["lam"] = lam;
    ctx->saved_data["tau"] = tau;
    ctx->saved_data["hard_step"] = hard_step;
    ctx->saved_data["algorithm"] = algorithm;
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {op.call(scores, targets, weight_scale, theta, lam, tau, hard_step, algorithm)};
  }

  // One gradient per input: the scores' only.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = typed_op<ApLossBackwardSignature>("sdd::continuous_ap_loss_backward");
    variable_list out(8);
    if (!grads[0].defined()) return out;
    const variable_list saved = ctx->get_saved_variables();
    const c10::optional<at::Tensor> scale = saved[2].defined() ? c10::optional<at::Tensor>(saved[2]) : c10::nullopt;
    const std::string algorithm = ctx->saved_data["algorithm"].toStringRef();
    out[0] = op.call(grads[0], saved[0], saved[1], scale, ctx->saved_data["theta"].toDouble(),
                     ctx->saved_data["lam"].toDouble(), ctx->saved_data["tau"].toDouble(),
                     ctx->saved_data["hard_step"].toBool(), algorithm);
    return out;
  }
};

at::Tensor continuous_ap_loss_autograd(const at::Tensor& scores, const at::Tensor& targets,
                                       const c10::optional<at::Tensor>& weight_scale, double theta, double lam,
                                       double tau, bool hard_step, c10::string_view algorithm) {
  return ContinuousApLossFunction::apply(scores, targets, weight_scale, theta, lam, tau, hard_step,
                                         std::string(algorithm))[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, Autograd, m) {
  m.impl("continuous_ap_loss", &continuous_ap_loss_autograd);
  m.impl("continuous_ap_loss_backward", torch::autograd::autogradNotImplementedFallback());
}

}  // namespace autograd
}  // namespace sdd
