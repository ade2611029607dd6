// Inputs of sdd::continuous_ap_loss (and its backward), as every backend receives them.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <string>

namespace sdd {

enum class ApAlgorithm { kAuto, kPairwise, kSorted };

struct ApLossOptions {
  double theta;    // targets at or under theta carry no weight
  double lam;      // weight of the ranking-error mass N_j
  double tau;      // width of the smoothed step (> 0)
  bool hard_step;  // phi(x) = [x <= 0] instead of the smoothed step (no gradient)
  ApAlgorithm algorithm;
};

// Checks scores [A, C] and targets / weight_scale of the same shape and device, and the options;
// ValueError / TypeError naming the argument, before any work.
ApLossOptions check_ap_loss_inputs(const at::Tensor& scores, const at::Tensor& targets,
                                   const c10::optional<at::Tensor>& weight_scale, double theta, double lam,
                                   double tau, bool hard_step, const std::string& algorithm);

// What every backend computes from: the checked options and fp64 contiguous copies.
struct ApLossInputs {
  at::Tensor s, t, scale;  // [A, C] scores, targets, weight scale (undefined when not given)
  ApLossOptions options;
};

// check_ap_loss_inputs, then the fp64 copies (on the inputs' device).
ApLossInputs prepare_ap_loss_inputs(const at::Tensor& scores, const at::Tensor& targets,
                                    const c10::optional<at::Tensor>& weight_scale, double theta, double lam,
                                    double tau, bool hard_step, c10::string_view algorithm);

}  // namespace sdd
