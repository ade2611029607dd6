#include "ap_loss.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "options.h"

namespace sdd {

ApLossOptions check_ap_loss_inputs(const at::Tensor& scores, const at::Tensor& targets,
                                   const c10::optional<at::Tensor>& weight_scale, double theta, double lam,
                                   double tau, bool hard_step, const std::string& algorithm) {
  check_float_tensor(scores, "scores", 2);
  check_float_tensor(targets, "targets", 2);
  TORCH_CHECK_VALUE(targets.sizes() == scores.sizes(), "targets must have the shape of scores ", scores.sizes(),
                    "; got ", targets.sizes());
  check_same_device(targets, "targets", scores, "scores");
  TORCH_CHECK_VALUE(scores.size(1) >= 1, "scores must have at least one candidate per anchor; got shape ",
                    scores.sizes());
  if (weight_scale.has_value()) {
    check_float_tensor(*weight_scale, "weight_scale", 2);
    TORCH_CHECK_VALUE(weight_scale->sizes() == scores.sizes(), "weight_scale must have the shape of scores ",
                      scores.sizes(), "; got ", weight_scale->sizes());
    check_same_device(*weight_scale, "weight_scale", scores, "scores");
  }
  TORCH_CHECK_VALUE(std::isfinite(theta), "theta must be finite; got ", theta);
  TORCH_CHECK_VALUE(std::isfinite(lam) && lam >= 0.0, "lam must be finite and >= 0; got ", lam);
  TORCH_CHECK_VALUE(std::isfinite(tau) && tau > 0.0, "tau must be finite and > 0; got ", tau);
  ApAlgorithm parsed;
  if (algorithm == "auto") {
    parsed = ApAlgorithm::kAuto;
  } else if (algorithm == "pairwise") {
    parsed = ApAlgorithm::kPairwise;
  } else if (algorithm == "sorted") {
    parsed = ApAlgorithm::kSorted;
  } else {
    TORCH_CHECK_VALUE(false, "algorithm must be one of 'auto', 'pairwise', 'sorted'; got '", algorithm, "'");
  }
  return {theta, lam, tau, hard_step, parsed};
}

ApLossInputs prepare_ap_loss_inputs(const at::Tensor& scores, const at::Tensor& targets,
                                    const c10::optional<at::Tensor>& weight_scale, double theta, double lam,
                                    double tau, bool hard_step, c10::string_view algorithm) {
  const ApLossOptions options =
      check_ap_loss_inputs(scores, targets, weight_scale, theta, lam, tau, hard_step, std::string(algorithm));
  const auto fp64 = [](const at::Tensor& x) { return x.to(at::kDouble).contiguous(); };
  return {fp64(scores), fp64(targets), weight_scale.has_value() ? fp64(*weight_scale) : at::Tensor(), options};
}

}  // namespace sdd
