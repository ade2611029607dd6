#include "features.h"

#include <ATen/ATen.h>

#include "options.h"  // compute_dtype

namespace sdd {

ScaledFeatures scaled_features(const at::Tensor& feats, bool normalize) {
  at::Tensor x = feats.to(at::kDouble);
  if (normalize) x = x / at::clamp_min(at::linalg_vector_norm(x, 2, {-1}, true), kNormEps);
  const at::Tensor rms = x.square().sum(-1).mean().sqrt();
  const at::Tensor usable = at::logical_and(at::isfinite(rms), rms > 0);
  const at::Tensor factor = at::where(usable, at::exp2(-at::round(at::log2(at::where(usable, rms, 1.0)))), 1.0);
  return {(x * factor).to(compute_dtype(feats)).contiguous(), factor};
}

at::Tensor unscale_gradient(const at::Tensor& grad, const ScaledFeatures& scaled, const at::Tensor& feats,
                            bool normalize) {
  at::Tensor g = grad.to(at::kDouble) * scaled.factor;  // d loss / d (normalised feats)
  if (normalize) {  // through x = f / max(||f||, eps), in fp64
    const at::Tensor f = feats.to(at::kDouble);
    const at::Tensor norms = at::linalg_vector_norm(f, 2, {-1}, true);
    const at::Tensor unit = f / at::clamp_min(norms, kNormEps);
    const at::Tensor radial = (unit * g).sum(-1, true);
    g = at::where(norms > kNormEps, (g - unit * radial) / at::clamp_min(norms, kNormEps), g / kNormEps);
  }
  return g.to(grad.scalar_type());
}

}  // namespace sdd
