// sum_of_squares for float32 / float64 rows, one copy per instruction set (clones.h), compiled
// without contracting multiply-adds: every copy rounds like the generic template (tensor_utils.h),
// so the normalisation and the scale s are the same bits on every machine.
#pragma GCC optimize("fp-contract=off")

#include "tensor_utils.h"

#include "clones.h"

namespace sdd {
namespace cpu {

SDD_CLONES double sum_of_squares(const float* row, int64_t d, const double* center) {
  return sum_of_squares_inline(row, d, center);
}
SDD_CLONES double sum_of_squares(const double* row, int64_t d, const double* center) {
  return sum_of_squares_inline(row, d, center);
}

}  // namespace cpu
}  // namespace sdd
