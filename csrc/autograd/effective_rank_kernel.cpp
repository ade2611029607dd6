// Autograd of sdd::effective_rank: d erank / d y is the op sdd::effective_rank_backward (a
// kernel of its own per device); that op is not twice differentiable.
#include <ATen/core/LegacyTypeDispatch.h>  // at::AutoDispatchBelowADInplaceOrView
#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/csrc/autograd/custom_function.h>  // not <torch/autograd.h>: the CMake build links torch_cpu only
#include <torch/library.h>

#include "typed_op.h"

namespace sdd {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class EffectiveRankFunction : public torch::autograd::Function<EffectiveRankFunction> {
 public:
  // y [Q, R, d] -> [Q]
  static variable_list forward(AutogradContext* ctx, const at::Tensor& y) {
    static const auto op = typed_op<at::Tensor(const at::Tensor&)>("sdd::effective_rank");
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({y});
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {op.call(y)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = typed_op<at::Tensor(const at::Tensor&, const at::Tensor&)>("sdd::effective_rank_backward");
    if (!grads[0].defined()) return {at::Tensor()};
    return {op.call(grads[0], ctx->get_saved_variables()[0])};
  }
};

at::Tensor effective_rank_autograd(const at::Tensor& y) { return EffectiveRankFunction::apply(y)[0]; }

}  // namespace

TORCH_LIBRARY_IMPL(sdd, Autograd, m) {
  m.impl("effective_rank", &effective_rank_autograd);
  m.impl("effective_rank_backward", torch::autograd::autogradNotImplementedFallback());
}

}  // namespace autograd
}  // namespace sdd
