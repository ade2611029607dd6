// sdd::continuous_ap_loss(_backward) on the CPU: the continuous-target AP loss of every anchor
// (csrc/common/ap_loss.h), anchors in parallel, fp64 throughout.
//
// Two algorithms with the same values: `pairwise` visits every (j, k) pair, O(C^2) per anchor
// (only weighted j: most candidates of a real anchor carry no weight); `sorted` sorts the
// candidates by target and by score and sums the polynomial pieces of the smoothed step with
// Fenwick trees over score ranks, O(C log C). `auto` takes `sorted` from kSortedFrom candidates.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "../common/ap_loss.h"
#include "../inputs/ap_loss.h"
#include "../inputs/options.h"
#include "tensor_utils.h"

namespace sdd {
namespace cpu {
namespace {

constexpr int64_t kSortedFrom = 384;  // candidates per anchor from which `auto` sorts (benchmarks/)

// One anchor's candidates, fp64.
struct Anchor {
  const double* s;      // [C] scores
  const double* t;      // [C] targets
  const double* scale;  // [C] weight scale, or nullptr (1)
  int64_t C;
};

// Sums over a prefix of positions of `width` values per position (a Fenwick tree).
class Fenwick {
 public:
  Fenwick(int64_t n, int width) : n_(n), width_(width), tree_((n + 1) * width, 0.0) {}

  void add(int64_t position, const double* values) {
    for (int64_t i = position + 1; i <= n_; i += i & -i) {
      for (int c = 0; c < width_; ++c) tree_[i * width_ + c] += values[c];
    }
  }

  // out[c] = sum of the values added at positions [lo, hi).
  void range(int64_t lo, int64_t hi, double* out) const {
    for (int c = 0; c < width_; ++c) out[c] = 0.0;
    for (int64_t i = hi; i > 0; i -= i & -i) {
      for (int c = 0; c < width_; ++c) out[c] += tree_[i * width_ + c];
    }
    for (int64_t i = lo; i > 0; i -= i & -i) {
      for (int c = 0; c < width_; ++c) out[c] -= tree_[i * width_ + c];
    }
  }

 private:
  int64_t n_;
  int width_;
  std::vector<double> tree_;
};

// The candidates in order of target and of score, and each one's position in the score order.
struct Orders {
  std::vector<int64_t> by_target, by_score, score_rank;
  std::vector<double> sorted_scores;

  explicit Orders(const Anchor& a) : by_target(a.C), by_score(a.C), score_rank(a.C), sorted_scores(a.C) {
    std::iota(by_target.begin(), by_target.end(), 0);
    std::iota(by_score.begin(), by_score.end(), 0);
    std::sort(by_target.begin(), by_target.end(), [&](int64_t i, int64_t j) { return a.t[i] < a.t[j]; });
    std::sort(by_score.begin(), by_score.end(), [&](int64_t i, int64_t j) { return a.s[i] < a.s[j]; });
    for (int64_t r = 0; r < a.C; ++r) {
      score_rank[by_score[r]] = r;
      sorted_scores[r] = a.s[by_score[r]];
    }
  }
  // Positions of the scores < v (lower) and <= v (upper).
  int64_t lower(double v) const {
    return std::lower_bound(sorted_scores.begin(), sorted_scores.end(), v) - sorted_scores.begin();
  }
  int64_t upper(double v) const {
    return std::upper_bound(sorted_scores.begin(), sorted_scores.end(), v) - sorted_scores.begin();
  }
};

// Calls visit(first, last) for each run [first, last) of equal targets in `order` (ascending
// targets), from the smallest targets up, or from the largest down.
template <class Visit>
void target_groups(const Anchor& a, const std::vector<int64_t>& order, bool descending, Visit visit) {
  int64_t first = 0;
  std::vector<std::pair<int64_t, int64_t>> groups;
  for (int64_t i = 1; i <= a.C; ++i) {
    if (i == a.C || a.t[order[i]] != a.t[order[first]]) {
      groups.emplace_back(first, i);
      first = i;
    }
  }
  if (descending) std::reverse(groups.begin(), groups.end());
  for (const auto& g : groups) visit(g.first, g.second);
}

// P_j and N_j of every j with w_j != 0, pair by pair; own[j] (when not null) receives
// sum_k max(t_j - t_k, 0) * phi'(s_j - s_k).
void pairwise_counts(const Anchor& a, const ApLossOptions& o, const double* w, double* P, double* N, double* own) {
  for (int64_t j = 0; j < a.C; ++j) {
    if (w[j] == 0.0) continue;
    double p = 0.0, n = 0.0, slope = 0.0;
    for (int64_t k = 0; k < a.C; ++k) {
      if (a.t[k] >= a.t[j] && a.s[k] >= a.s[j]) p += 1.0;
      const double dt = a.t[j] - a.t[k];
      if (dt > 0.0) {
        n += dt * common::ap_step(a.s[j] - a.s[k], o.tau, o.hard_step);
        if (own != nullptr) slope += dt * common::ap_step_slope(a.s[j] - a.s[k], o.tau, o.hard_step);
      }
    }
    P[j] = p;
    N[j] = o.lam * n;
    if (own != nullptr) own[j] = slope;
  }
}

// The same from sorted orders. Moments of the candidates k already inserted (t_k < t_j):
// m = (sum 1, s, s^2, t, t s, t s^2) over a score range; phi is linear in s_k where s_k > s_j
// and quadratic where s_j - tau < s_k <= s_j.
void sorted_counts(const Anchor& a, const Orders& ord, const ApLossOptions& o, const double* w, double* P,
                   double* N, double* own) {
  Fenwick count(a.C, 1);
  int64_t inserted = 0;
  const double one = 1.0;
  target_groups(a, ord.by_target, /*descending=*/true, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) count.add(ord.score_rank[ord.by_target[i]], &one);  // t_k >= t_j
    inserted += last - first;
    for (int64_t i = first; i < last; ++i) {
      const int64_t j = ord.by_target[i];
      if (w[j] == 0.0) continue;
      double below;
      count.range(0, ord.lower(a.s[j]), &below);
      P[j] = static_cast<double>(inserted) - below;
    }
  });

  Fenwick moments(a.C, 6);
  const double tau = o.tau, tau2 = tau * tau;
  target_groups(a, ord.by_target, /*descending=*/false, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {  // strictly smaller targets only: query, then insert
      const int64_t j = ord.by_target[i];
      if (w[j] == 0.0) continue;
      const double sj = a.s[j], tj = a.t[j];
      double m[6];
      if (o.hard_step) {
        moments.range(ord.lower(sj), a.C, m);  // s_k >= s_j
        N[j] = o.lam * (tj * m[0] - m[3]);
        if (own != nullptr) own[j] = 0.0;
        continue;
      }
      double q[6];
      moments.range(ord.upper(sj), a.C, m);             // s_k > s_j: phi = alpha + beta s_k
      moments.range(ord.upper(sj - tau), ord.upper(sj), q);  // s_j - tau < s_k <= s_j: (c + s_k)^2 / tau^2
      const double alpha = 1.0 - 2.0 * sj / tau, beta = 2.0 / tau, c = tau - sj;
      const double linear = tj * (alpha * m[0] + beta * m[1]) - (alpha * m[3] + beta * m[4]);
      const double quadratic =
          (tj * (c * c * q[0] + 2.0 * c * q[1] + q[2]) - (c * c * q[3] + 2.0 * c * q[4] + q[5])) / tau2;
      N[j] = o.lam * (linear + quadratic);
      if (own != nullptr) {
        own[j] = -2.0 / tau * (tj * m[0] - m[3]) - 2.0 / tau2 * (tj * (c * q[0] + q[1]) - (c * q[3] + q[4]));
      }
    }
    for (int64_t i = first; i < last; ++i) {
      const int64_t k = ord.by_target[i];
      const double sk = a.s[k], tk = a.t[k];
      const double v[6] = {1.0, sk, sk * sk, tk, tk * sk, tk * sk * sk};
      moments.add(ord.score_rank[k], v);
    }
  });
}

// grad[k] -= sum_j coef_j max(t_j - t_k, 0) phi'(s_j - s_k), j over candidates with t_j > t_k:
// moments r = (sum coef, coef s, coef t, coef t s) of the inserted j over a score range.
void sorted_cross_gradient(const Anchor& a, const Orders& ord, const ApLossOptions& o, const double* coef,
                           double* grad) {
  Fenwick moments(a.C, 4);
  const double tau = o.tau, tau2 = tau * tau;
  target_groups(a, ord.by_target, /*descending=*/true, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const int64_t k = ord.by_target[i];
      const double sk = a.s[k], tk = a.t[k], b = tau + sk;
      double l[4], q[4];
      moments.range(0, ord.lower(sk), l);              // s_j < s_k: phi' = -2 / tau
      moments.range(ord.lower(sk), ord.lower(b), q);   // s_k <= s_j < s_k + tau: phi' = -2 (b - s_j) / tau^2
      const double linear = -2.0 / tau * (l[2] - tk * l[0]);
      const double quadratic = -2.0 / tau2 * (b * q[2] - q[3] - tk * (b * q[0] - q[1]));
      grad[k] -= linear + quadratic;
    }
    for (int64_t i = first; i < last; ++i) {
      const int64_t j = ord.by_target[i];
      if (coef[j] == 0.0) continue;
      const double sj = a.s[j], tj = a.t[j];
      const double v[4] = {coef[j], coef[j] * sj, coef[j] * tj, coef[j] * tj * sj};
      moments.add(ord.score_rank[j], v);
    }
  });
}

bool use_sorted(const ApLossOptions& o, int64_t C) {
  return o.algorithm == ApAlgorithm::kSorted || (o.algorithm == ApAlgorithm::kAuto && C >= kSortedFrom);
}

bool all_finite(const Anchor& a) {
  for (int64_t j = 0; j < a.C; ++j) {
    if (!std::isfinite(a.s[j]) || !std::isfinite(a.t[j]) || (a.scale != nullptr && !std::isfinite(a.scale[j]))) {
      return false;
    }
  }
  return true;
}

// Per-anchor work: weights, P, N (and when `grad_out` is given, the gradient of the anchor's loss
// scaled by `grad_out`, written to `grad`). Returns the anchor's loss.
double anchor_loss(const Anchor& a, const ApLossOptions& o, const double* grad_out, double* grad) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (!all_finite(a)) {  // a non-finite input gives NaN, never a finite value from the rest
    if (grad != nullptr) std::fill(grad, grad + a.C, kNaN);
    return kNaN;
  }
  std::vector<double> w(a.C), P(a.C, 0.0), N(a.C, 0.0), own;
  double total = 0.0;
  for (int64_t j = 0; j < a.C; ++j) {
    w[j] = common::ap_weight(a.t[j], a.scale != nullptr ? a.scale[j] : 1.0, o.theta);
    total += w[j];
  }
  if (grad != nullptr) std::fill(grad, grad + a.C, 0.0);
  if (total == 0.0) return 0.0;  // no candidate above theta: no loss, no gradient
  const bool sorted = use_sorted(o, a.C);
  const bool backward = grad != nullptr && !o.hard_step;
  if (backward) own.assign(a.C, 0.0);
  std::unique_ptr<Orders> orders;
  if (sorted) {
    orders = std::make_unique<Orders>(a);
    sorted_counts(a, *orders, o, w.data(), P.data(), N.data(), backward ? own.data() : nullptr);
  } else {
    pairwise_counts(a, o, w.data(), P.data(), N.data(), backward ? own.data() : nullptr);
  }
  double loss = 0.0;
  for (int64_t j = 0; j < a.C; ++j) {
    if (w[j] != 0.0) loss += w[j] * N[j] / (P[j] + N[j]);
  }
  if (backward) {
    // d loss / d N_j = w_j P_j / (P_j + N_j)^2 / total; d N_j / d s = lam * phi' terms.
    std::vector<double> coef(a.C, 0.0);
    for (int64_t j = 0; j < a.C; ++j) {
      if (w[j] == 0.0) continue;
      const double denominator = P[j] + N[j];
      coef[j] = *grad_out * w[j] * P[j] / (denominator * denominator) / total * o.lam;
      grad[j] += coef[j] * own[j];
    }
    if (sorted) {
      sorted_cross_gradient(a, *orders, o, coef.data(), grad);
    } else {
      for (int64_t j = 0; j < a.C; ++j) {
        if (coef[j] == 0.0) continue;
        for (int64_t k = 0; k < a.C; ++k) {
          const double dt = a.t[j] - a.t[k];
          if (dt > 0.0) grad[k] -= coef[j] * dt * common::ap_step_slope(a.s[j] - a.s[k], o.tau, false);
        }
      }
    }
  }
  return loss / total;
}

// Anchor i of the prepared inputs.
Anchor anchor_of(const ApLossInputs& in, int64_t i) {
  const int64_t C = in.s.size(1);
  return {in.s.data_ptr<double>() + i * C, in.t.data_ptr<double>() + i * C,
          in.scale.defined() ? in.scale.data_ptr<double>() + i * C : nullptr, C};
}

// scores, targets [A, C] -> per-anchor losses [A] (compute dtype of scores)
at::Tensor continuous_ap_loss_cpu(const at::Tensor& scores, const at::Tensor& targets,
                                  const c10::optional<at::Tensor>& weight_scale, double theta, double lam,
                                  double tau, bool hard_step, c10::string_view algorithm) {
  const ApLossInputs in =
      prepare_ap_loss_inputs(scores, targets, weight_scale, theta, lam, tau, hard_step, algorithm);
  const int64_t A = in.s.size(0);
  std::vector<double> losses(A);
  at::parallel_for(0, A, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) losses[i] = anchor_loss(anchor_of(in, i), in.options, nullptr, nullptr);
  });
  return tensor_from(losses, scores.options().dtype(compute_dtype(scores)));
}

// grad [A] -> d (sum_a grad[a] * loss[a]) / d scores [A, C] (dtype of scores; targets get none)
at::Tensor continuous_ap_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& scores,
                                           const at::Tensor& targets, const c10::optional<at::Tensor>& weight_scale,
                                           double theta, double lam, double tau, bool hard_step,
                                           c10::string_view algorithm) {
  const ApLossInputs in =
      prepare_ap_loss_inputs(scores, targets, weight_scale, theta, lam, tau, hard_step, algorithm);
  const int64_t A = in.s.size(0), C = in.s.size(1);
  TORCH_CHECK_VALUE(grad.dim() == 1 && grad.size(0) == A, "grad must have shape [", A, "]; got ", grad.sizes());
  const at::Tensor g = grad.to(at::kDouble).contiguous();
  at::Tensor grad_scores = at::empty({A, C}, in.s.options());
  at::parallel_for(0, A, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      anchor_loss(anchor_of(in, i), in.options, g.data_ptr<double>() + i, grad_scores.data_ptr<double>() + i * C);
    }
  });
  return grad_scores.to(scores.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) {
  m.impl("continuous_ap_loss", &continuous_ap_loss_cpu);
  m.impl("continuous_ap_loss_backward", &continuous_ap_loss_backward_cpu);
}

}  // namespace cpu
}  // namespace sdd
