// The autograd kernels call the sdd ops through the dispatcher, never a backend's function: in
// a forward (under at::AutoDispatchBelowADInplaceOrView) the call reaches the kernel of the
// inputs' device (CPU, CUDA, Meta, or a fake kernel while torch.compile traces); in a backward
// it is a full call, so the backward op's own autograd kernel runs (not twice differentiable).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace sdd {
namespace autograd {

// Handle of the op `name` ("sdd::..."), typed by its C++ signature. Look it up once (a static).
template <class Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

}  // namespace autograd
}  // namespace sdd
