// The Python module sdd_fast._C: loading it registers the ops; it also answers build questions.
#include <pybind11/pybind11.h>

namespace sdd {
bool has_cuda();
int64_t cuda_version();
bool has_openmp();
}  // namespace sdd

PYBIND11_MODULE(_C, m) {
  m.doc() = "sdd-fast compiled ops (registered in torch.ops.sdd on import)";
  m.def("has_cuda", &sdd::has_cuda, "True when the CUDA kernels were compiled into this build.");
  m.def("cuda_version", &sdd::cuda_version,
        "CUDA runtime version the kernels were built with (e.g. 13000), or -1 without CUDA.");
  m.def("has_openmp", &sdd::has_openmp,
        "True when the CPU kernels were compiled with OpenMP (they then use torch's intra-op threads).");
}
