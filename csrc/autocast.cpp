// Autocast kernels for every sdd op: the ops have their own precision rules (fp16 / bf16 / fp32
// computed in fp32, fp64 in fp64), so inside torch.autocast they run with autocast off, on their
// inputs as given. Without this, the ATen calls inside the kernels (the CPU path's matrix
// products, say) would be autocast to bf16 / fp16 and the kernels would read their fp32 buffers
// as the wrong type ("expected scalar type Float but found BFloat16").
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <string>

#include "schemas.h"

namespace sdd {
namespace {

void without_autocast(const c10::OperatorHandle& op, c10::DispatchKeySet keys, torch::jit::Stack* stack) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  op.redispatchBoxed(keys - c10::autocast_dispatch_keyset, stack);
}

void register_without_autocast(torch::Library& m) {
  for (const char* schema : kKernelOpSchemas) {
    const std::string name(schema);
    m.impl(name.substr(0, name.find('(')).c_str(), torch::CppFunction::makeFromBoxedFunction<&without_autocast>());
  }
  m.impl("dse", torch::CppFunction::makeFromBoxedFunction<&without_autocast>());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, AutocastCPU, m) { register_without_autocast(m); }
TORCH_LIBRARY_IMPL(sdd, AutocastCUDA, m) { register_without_autocast(m); }

}  // namespace sdd
