// What this build contains; sdd_fast compares it with torch at import.
#include <cstdint>

namespace sdd {

#ifdef SDD_WITH_CUDA
int64_t cuda_runtime_version();  // csrc/cuda/cuda_info.cu
bool has_cuda() { return true; }
int64_t cuda_version() { return cuda_runtime_version(); }
#else
bool has_cuda() { return false; }
int64_t cuda_version() { return -1; }
#endif

// The CPU kernels' at::parallel_for runs on OpenMP threads only when compiled with -fopenmp.
#ifdef _OPENMP
bool has_openmp() { return true; }
#else
bool has_openmp() { return false; }
#endif

}  // namespace sdd
