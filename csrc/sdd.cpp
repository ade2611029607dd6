// Every op schema of the `sdd` namespace, in one place (SPEC "Building-block ops").
//
// Kernels register per dispatch key in their own files: CPU in csrc/cpu/, CUDA in csrc/cuda/,
// Autograd in csrc/autograd/ (so libtorch users get gradients too), Autocast in
// csrc/autocast.cpp; the fake kernels (shapes only, for torch.compile) are registered from
// Python (sdd_fast/core/ops.py). Backward passes are ops of their own. `dse` is a composite of
// `dse_forward`, which also returns the forward pass's constants (labels, centroids,
// nearest-other indices, permutation) so the backward needs no rerun.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "schemas.h"

namespace sdd {
namespace {

at::Tensor dse_composite(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group,
                         bool normalize, int64_t iters, double tol, int64_t n_init, c10::string_view seeding,
                         int64_t seed, const c10::optional<at::Tensor>& local_labels,
                         const c10::optional<at::Tensor>& global_labels) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("sdd::dse_forward", "")
                             .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                                 const at::Tensor&, int64_t, int64_t, int64_t, bool, int64_t, double, int64_t,
                                 c10::string_view, int64_t, const c10::optional<at::Tensor>&,
                                 const c10::optional<at::Tensor>&)>();
  return std::get<0>(op.call(feats, local_k, global_k, group, normalize, iters, tol, n_init, seeding, seed,
                             local_labels, global_labels));
}

}  // namespace

TORCH_LIBRARY(sdd, m) {
  for (const char* schema : kKernelOpSchemas) m.def(schema);
  m.def("dse(Tensor feats, int local_k=3, int global_k=24, int group=8, bool normalize=True,"
        " int iters=20, float tol=1e-4, int n_init=1, str seeding=\"greedy\", int seed=0,"
        " Tensor? local_labels=None, Tensor? global_labels=None) -> Tensor");
  m.impl("dse", c10::DispatchKey::CompositeImplicitAutograd, TORCH_FN(dse_composite));
}

}  // namespace sdd
