// Autograd of sdd::dse_forward, hence of sdd::dse (CompositeImplicitAutograd over it, csrc/sdd.cpp):
// differentiable in feats through the five values. The forward's other outputs (labels,
// centroids, nearest-other indices, permutation) are constants: no gradient flows through them,
// and the backward op sdd::dse_backward reads them instead of rerunning k-means. dse_backward is
// not twice differentiable.
//
// Plain CPU tensors that require grad take a shorter path: the forward keeps its eigen-
// decompositions and prepared features (csrc/cpu/dse_cpu.h) in the autograd context and the
// backward reuses them, so no Gram is built, no eigensolver runs twice and the features are not
// normalised again. Everything else (CUDA, fake / functional
// tensors under torch.compile or export, vmap) goes through the two ops.
#include <ATen/TensorSubclassLikeUtils.h>
#include <ATen/core/LegacyTypeDispatch.h>  // at::AutoDispatchBelowADInplaceOrView
#include <ATen/core/Tensor.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/csrc/autograd/custom_function.h>  // not <torch/autograd.h>: the CMake build links torch_cpu only
#include <torch/library.h>

#include <cstdint>
#include <string>
#include <tuple>

#include "../cpu/dse_cpu.h"
#include "typed_op.h"

namespace sdd {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using DseForward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using DseForwardSignature = DseForward(const at::Tensor&, int64_t, int64_t, int64_t, bool, int64_t, double, int64_t,
                                       c10::string_view, int64_t, const c10::optional<at::Tensor>&,
                                       const c10::optional<at::Tensor>&);
using DseBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                        int64_t, int64_t, int64_t, bool);
constexpr int kInputs = 13;  // dse_forward's arguments and `keep`: backward returns one gradient each

class DseForwardFunction : public torch::autograd::Function<DseForwardFunction> {
 public:
  // feats [B, N, d] -> values [5], local_labels [B, N], global_labels [G, group * N],
  // centroids [G, global_k, d], other [G, group * N], perm [B, N]
  static variable_list forward(AutogradContext* ctx, const at::Tensor& feats, int64_t local_k, int64_t global_k,
                               int64_t group, bool normalize, int64_t iters, double tol, int64_t n_init,
                               c10::string_view seeding, int64_t seed, const c10::optional<at::Tensor>& local_labels,
                               const c10::optional<at::Tensor>& global_labels, bool keep) {
    static const auto op = typed_op<DseForwardSignature>("sdd::dse_forward");
    ctx->set_materialize_grads(false);
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    cpu::DseSpectra spectra;
    auto [values, local_out, global_out, centroids, other, perm] =
        keep ? cpu::dse_forward(feats, local_k, global_k, group, normalize, iters, tol, n_init, seeding, seed,
                                local_labels, global_labels, &spectra)
             : op.call(feats, local_k, global_k, group, normalize, iters, tol, n_init, seeding, seed, local_labels,
                       global_labels);
    for (size_t i = 0; i < spectra.size(); ++i) ctx->saved_data["spectra" + std::to_string(i)] = spectra[i];
    ctx->mark_non_differentiable({local_out, global_out, centroids, other, perm});
    ctx->save_for_backward({feats, values, local_out, global_out, centroids, other, perm});
    ctx->saved_data["local_k"] = local_k;
    ctx->saved_data["global_k"] = global_k;
    ctx->saved_data["group"] = group;
    ctx->saved_data["normalize"] = normalize;
    return {values, local_out, global_out, centroids, other, perm};
  }

  // grads[0] is d loss / d values; the other outputs are constants.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = typed_op<DseBackwardSignature>("sdd::dse_backward");
    variable_list out(kInputs);  // undefined: no gradient
    if (!grads[0].defined()) return out;
    const variable_list s = ctx->get_saved_variables();  // feats, values, local, global, centroids, other, perm
    // create_graph=True: through the op, whose autograd says that it is not twice differentiable.
    if (ctx->saved_data.count("spectra0") > 0 && !at::GradMode::is_enabled()) {
      // A direct call, not through the dispatcher: the kernel's own products must not be autocast
      // (a backward inside torch.autocast), as the op's autocast kernel ensures (csrc/autocast.cpp).
      const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
      cpu::DseSpectra spectra;
      for (int i = 0; i < cpu::kDseSpectraTensors; ++i) {
        spectra.push_back(ctx->saved_data["spectra" + std::to_string(i)].toTensor());
      }
      out[0] = cpu::dse_backward(grads[0], s[1], s[0], s[2], s[3], s[4], s[5], s[6],
                                 ctx->saved_data["local_k"].toInt(), ctx->saved_data["global_k"].toInt(),
                                 ctx->saved_data["group"].toInt(), ctx->saved_data["normalize"].toBool(), &spectra);
      return out;
    }
    out[0] = op.call(grads[0], s[1], s[0], s[2], s[3], s[4], s[5], s[6], ctx->saved_data["local_k"].toInt(),
                     ctx->saved_data["global_k"].toInt(), ctx->saved_data["group"].toInt(),
                     ctx->saved_data["normalize"].toBool());
    return out;
  }
};

DseForward dse_forward_autograd(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group,
                                bool normalize, int64_t iters, double tol, int64_t n_init, c10::string_view seeding,
                                int64_t seed, const c10::optional<at::Tensor>& local_labels,
                                const c10::optional<at::Tensor>& global_labels) {
  // The kept-spectra path: a plain dense CPU tensor (not fake, functional or batched) whose
  // gradient will be taken; the labels, when given, plain too.
  auto plain_cpu = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.layout() == at::kStrided && !at::isTensorSubclassLike(t);
  };
  const bool keep = at::GradMode::is_enabled() && feats.requires_grad() && plain_cpu(feats) &&
                    (!local_labels.has_value() || plain_cpu(*local_labels)) &&
                    (!global_labels.has_value() || plain_cpu(*global_labels));
  const variable_list out = DseForwardFunction::apply(feats, local_k, global_k, group, normalize, iters, tol, n_init,
                                                      seeding, seed, local_labels, global_labels, keep);
  return {out[0], out[1], out[2], out[3], out[4], out[5]};
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, Autograd, m) {
  m.impl("dse_forward", &dse_forward_autograd);
  m.impl("dse_backward", torch::autograd::autogradNotImplementedFallback());
}

}  // namespace autograd
}  // namespace sdd
