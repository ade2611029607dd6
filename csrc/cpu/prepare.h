// SPEC steps 1-2 on the CPU in a few passes over the rows, without float64 copies of the features:
// the same numbers as sdd::scaled_features (inputs/features.h) plus the scale s, and the two
// pieces of the backward that run over every row (through s, and through the normalisation).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace sdd {
namespace cpu {

struct PreparedFeatures {
  at::Tensor x;              // [B, N, d] compute dtype, contiguous: normalised (if asked) and rescaled
  double factor;             // the power of two x was multiplied by
  std::vector<double> mean;  // [d]: mean over all rows of x (float64)
  double scale;              // s = mean over rows of ||x_i - mean||
  bool collapsed;            // s <= kCollapseFraction * mean ||x_i||
  bool finite;               // false: feats has a NaN / Inf (then nothing else is set)
  std::vector<double> row_norms;  // [B N]: each row's squared norm (sum_of_squares), what k-means takes
  double mean_norm = 0.0;         // mean over rows of ||x_i|| (the collapse test's reference)
};

// feats [B, N, d] any floating dtype. With defer_scale, the pass that measures s is left to the
// caller (scale and collapsed unset): scale_part for every chunk < scale_chunks, in any order and on any
// thread (inside the caller's own parallel region: one join less), then finish_scale; the same
// numbers as without.
PreparedFeatures prepare_features(const at::Tensor& feats, bool normalize, bool defer_scale = false);
int64_t scale_chunks(const PreparedFeatures& prep);
// partials[chunk] <- the sum over the chunk's rows of ||x_i - mean||, in row order.
void scale_part(const PreparedFeatures& prep, int64_t chunk, double* partials);
// scale <- the partials' sum (in chunk order) over the rows; collapsed from it.
void finish_scale(PreparedFeatures& prep, const double* partials);

// gx [B, N, d] (x's dtype) += coeff / (B N) * (u_i - mean_j u_j), u_i the unit vector of
// x_i - mean (0 when x_i is the mean): coeff times the gradient of s.
void add_scale_gradient(const PreparedFeatures& prep, double coeff, at::Tensor& gx);

// d loss / d feats (feats' dtype) from d loss / d x (gx, x's dtype): through the rescaling and,
// if asked, the normalisation x = f / max(||f||, eps). Written into gx (and gx returned) when
// feats has x's dtype.
at::Tensor unscale_gradient(const at::Tensor& gx, const PreparedFeatures& prep, const at::Tensor& feats,
                            bool normalize);

}  // namespace cpu
}  // namespace sdd
