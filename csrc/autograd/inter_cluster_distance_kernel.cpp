// Autograd of sdd::inter_cluster_distance: differentiable in x and the centroids, with the labels
// and the choice of the nearest other centroid constant; the gradients are the op
// sdd::inter_cluster_distance_backward, which is not twice differentiable.
#include <ATen/core/LegacyTypeDispatch.h>  // at::AutoDispatchBelowADInplaceOrView
#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/csrc/autograd/custom_function.h>  // not <torch/autograd.h>: the CMake build links torch_cpu only
#include <torch/library.h>

#include <tuple>

#include "typed_op.h"

namespace sdd {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class InterClusterDistanceFunction : public torch::autograd::Function<InterClusterDistanceFunction> {
 public:
  // x [P, M, d], centroids [P, k, d], labels [P, M] int64 -> [P]
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& centroids,
                               const at::Tensor& labels) {
    static const auto op = typed_op<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>(
        "sdd::inter_cluster_distance");
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({x, centroids, labels});
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return {op.call(x, centroids, labels)};
  }

  // One gradient per input (x, centroids, labels).
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = typed_op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                       const at::Tensor&, const at::Tensor&)>(
        "sdd::inter_cluster_distance_backward");
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const variable_list saved = ctx->get_saved_variables();
    auto [grad_x, grad_centroids] = op.call(grads[0], saved[0], saved[1], saved[2]);
    return {grad_x, grad_centroids, at::Tensor()};
  }
};

at::Tensor inter_cluster_distance_autograd(const at::Tensor& x, const at::Tensor& centroids, const at::Tensor& labels) {
  return InterClusterDistanceFunction::apply(x, centroids, labels)[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, Autograd, m) {
  m.impl("inter_cluster_distance", &inter_cluster_distance_autograd);
  m.impl("inter_cluster_distance_backward", torch::autograd::autogradNotImplementedFallback());
}

}  // namespace autograd
}  // namespace sdd
