// The continuous-target AP loss of one anchor (sdd::continuous_ap_loss), shared by the CPU and
// CUDA kernels. For candidates j with teacher similarity t_j (targets) and student score s_j:
//   w_j = c_j * max(t_j - theta, 0)                         (c_j: weight_scale, e.g. alpha)
//   P_j = #{k : t_k >= t_j and s_k >= s_j}                  (k = j included; no gradient)
//   N_j = lam * sum_k max(t_j - t_k, 0) * phi(s_j - s_k)
//   loss = sum_j w_j N_j / (P_j + N_j) / sum_j w_j          (0 when sum_j w_j = 0)
// phi is the smoothed step (1 - min(x, tau) / tau)^2 for x >= 0, 1 - 2 x / tau for x < 0
// (continuous with its first derivative at 0), or the hard step [x <= 0].
#pragma once

#include <cmath>

#include "philox.h"  // SDD_HOST_DEVICE

namespace sdd {
namespace common {

// phi(x), x = s_j - s_k.
SDD_HOST_DEVICE double ap_step(double x, double tau, bool hard) {
  if (hard) return x <= 0.0 ? 1.0 : 0.0;
  if (x < 0.0) return 1.0 - 2.0 * x / tau;
  const double r = 1.0 - (x < tau ? x : tau) / tau;
  return r * r;
}

// d phi / d x (0 for the hard step).
SDD_HOST_DEVICE double ap_step_slope(double x, double tau, bool hard) {
  if (hard) return 0.0;
  if (x < 0.0) return -2.0 / tau;
  return x < tau ? -2.0 / tau * (1.0 - x / tau) : 0.0;
}

// w_j (a NaN target or scale gives NaN, which then reaches the loss).
SDD_HOST_DEVICE double ap_weight(double target, double scale, double theta) {
  const double excess = target - theta;
  return scale * (excess > 0.0 || excess != excess ? excess : 0.0);
}

}  // namespace common
}  // namespace sdd
