#pragma GCC optimize("fp-contract=off")  // see prepare_rows.h

#include "prepare_rows.h"

#include "clones.h"

namespace sdd {
namespace cpu {

SDD_CLONES void normalized_row(const float* f, int64_t d, double norm, double factor, float* x, double* column_sums) {
  normalized_row_inline(f, d, norm, factor, x, column_sums);
}
SDD_CLONES void normalized_row(const double* f, int64_t d, double norm, double factor, double* x,
                               double* column_sums) {
  normalized_row_inline(f, d, norm, factor, x, column_sums);
}

SDD_CLONES void unscaled_row(const float* g, const float* f, int64_t d, double norm, double factor, float* out) {
  unscaled_row_inline(g, f, d, norm, factor, out);
}
SDD_CLONES void unscaled_row(const double* g, const double* f, int64_t d, double norm, double factor, double* out) {
  unscaled_row_inline(g, f, d, norm, factor, out);
}

}  // namespace cpu
}  // namespace sdd
