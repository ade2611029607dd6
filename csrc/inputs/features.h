// SPEC steps 1-2's input preparation, shared by every backend: optional L2 normalisation, then an
// exact power-of-two rescaling to unit root-mean-square norm.
//
// Every component of dse is invariant to the features' scale (distances and spreads are divided
// by s, the effective rank is scale-free), so multiplying by 2^e changes no result, only keeps
// fp32 arithmetic (squared norms, distances) away from overflow and subnormals: finite fp32 input
// at 1e19 or 1e-20 gives the scale-1 answer. Norms are taken in fp64 for the same reason.
#pragma once

#include <ATen/core/Tensor.h>

namespace sdd {

constexpr double kNormEps = 1e-12;          // x / max(||x||, eps) (SPEC step 1), and every unit vector
constexpr double kCollapseFraction = 1e-6;  // collapsed when s <= fraction * mean ||x||

struct ScaledFeatures {
  at::Tensor x;       // [B, N, d] compute dtype, contiguous: normalised (if asked) and rescaled
  at::Tensor factor;  // 0-d fp64 on feats' device: the power of two x was multiplied by
};

// No host sync: the factor stays on the device.
ScaledFeatures scaled_features(const at::Tensor& feats, bool normalize);

// d loss / d feats from d loss / d x (x as scaled_features made it; `grad` in x's dtype).
at::Tensor unscale_gradient(const at::Tensor& grad, const ScaledFeatures& scaled, const at::Tensor& feats,
                            bool normalize);

}  // namespace sdd
