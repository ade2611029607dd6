// The kernel ops run through the CPU block emulator, as torch.ops.sdd_emu.* on CPU tensors
// (same schemas as torch.ops.sdd): the tests compare them with the CPU kernels and
// sdd_fast.reference. Built only for the tests (`make emu-test`), never into sdd_fast._C.
#include <torch/library.h>

#include "../device_ops/register.h"
#include "../schemas.h"
#include "emulator.h"

TORCH_LIBRARY(sdd_emu, m) {
  for (const char* schema : sdd::kKernelOpSchemas) m.def(schema);
}

TORCH_LIBRARY_IMPL(sdd_emu, CPU, m) { sdd::device_ops::register_kernel_ops<sdd::emulator::EmuBackend>(m); }
