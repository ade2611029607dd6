// Autograd of sdd::cluster_singular_sum: the labels are constants and the counts an int64
// output (no gradient); d values / d x is the op sdd::cluster_singular_sum_backward, which is
// not twice differentiable.
#include <ATen/core/LegacyTypeDispatch.h>  // at::AutoDispatchBelowADInplaceOrView
#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/csrc/autograd/custom_function.h>  // not <torch/autograd.h>: the CMake build links torch_cpu only
#include <torch/library.h>

#include <cstdint>
#include <tuple>

#include "typed_op.h"

namespace sdd {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class ClusterSingularSumFunction : public torch::autograd::Function<ClusterSingularSumFunction> {
 public:
  // x [P, M, d], labels [P, M] int64 -> values [P, k], counts [P, k] int64
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& labels, int64_t k) {
    static const auto op = typed_op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, int64_t)>(
        "sdd::cluster_singular_sum");
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x, labels});
    ctx->saved_data["k"] = k;
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto [values, counts] = op.call(x, labels, k);
    ctx->mark_non_differentiable({counts});
    return {values, counts};
  }

  // One gradient per input (x, labels, k).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op =
        typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t)>(
            "sdd::cluster_singular_sum_backward");
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const variable_list saved = ctx->get_saved_variables();
    return {op.call(grads[0], saved[0], saved[1], ctx->saved_data["k"].toInt()), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> cluster_singular_sum_autograd(const at::Tensor& x, const at::Tensor& labels,
                                                                 int64_t k) {
  const variable_list out = ClusterSingularSumFunction::apply(x, labels, k);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, Autograd, m) {
  m.impl("cluster_singular_sum", &cluster_singular_sum_autograd);
  m.impl("cluster_singular_sum_backward", torch::autograd::autogradNotImplementedFallback());
}

}  // namespace autograd
}  // namespace sdd
