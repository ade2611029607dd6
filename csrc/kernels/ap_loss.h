// The continuous-target AP loss (csrc/common/ap_loss.h) and its gradient, one block per anchor:
// each thread owns candidates j = thread, thread + threads, ...; the anchor's candidates stream
// through shared memory in tiles of kThreads, so every pair (j, k) is visited once per pass.
#pragma once

#include <cmath>
#include <cstdint>

#include "../common/ap_loss.h"
#include "block.h"

namespace sdd {
namespace kernels {

struct ApLossArgs {
  const double* s;      // [A, C] scores
  const double* t;      // [A, C] targets
  const double* scale;  // [A, C] weight scale, or nullptr (1)
  int64_t C;
  double theta, lam, tau;
  bool hard_step;
  double* loss;           // [A] forward output
  const double* grad;     // [A] backward: d out / d loss
  double* coef;           // [A, C] backward workspace: d out / d N_j * lam
  double* grad_scores;    // [A, C] backward output
};

// Shared memory: the reduction scratch and three tiles (scores, targets, coefficients).
constexpr int64_t ap_loss_shared_bytes() {
  return shared_size<double>(kReduceScratch) + 3 * shared_size<double>(kThreads);
}

struct ApTiles {
  double* scratch;
  double* s;
  double* t;
  double* coef;

  template <class Block>
  SDD_KERNEL static ApTiles take(Block& b) {
    SharedCursor shared(b.shared_bytes());
    ApTiles tiles;
    tiles.scratch = shared.take<double>(kReduceScratch);
    tiles.s = shared.take<double>(kThreads);
    tiles.t = shared.take<double>(kThreads);
    tiles.coef = shared.take<double>(kThreads);
    return tiles;
  }

  // Loads candidates [first, first + count) of the anchor's rows (s, t and, when given, coef)
  // after every thread is done with the previous tile; returns count. Every thread must call it.
  template <class Block>
  SDD_KERNEL int64_t load(Block& b, const double* s_row, const double* t_row, const double* coef_row, int64_t C,
                          int64_t first) const {
    const int64_t count = min_of<int64_t>(kThreads, C - first);
    b.sync();  // the previous tile is no longer read
    if (b.thread() < count) {
      s[b.thread()] = s_row[first + b.thread()];
      t[b.thread()] = t_row[first + b.thread()];
      if (coef_row != nullptr) coef[b.thread()] = coef_row[first + b.thread()];
    }
    b.sync();
    return count;
  }
};

// The anchor's rows and block-wide facts: sum of weights, and whether every input is finite.
struct ApAnchor {
  const double* s;
  const double* t;
  const double* scale;
  int64_t C;
  double total;
  bool finite;

  SDD_KERNEL double weight(const ApLossArgs& a, int64_t j) const {
    return common::ap_weight(t[j], scale != nullptr ? scale[j] : 1.0, a.theta);
  }

  template <class Block>
  SDD_KERNEL static ApAnchor read(Block& b, const ApLossArgs& a, const ApTiles& tiles) {
    const int64_t row = b.block_x() * a.C;
    ApAnchor anchor{a.s + row, a.t + row, a.scale != nullptr ? a.scale + row : nullptr, a.C, 0.0, true};
    double total = 0.0, bad = 0.0;
    for (int64_t j = b.thread(); j < a.C; j += b.threads()) {
      const double c = anchor.scale != nullptr ? anchor.scale[j] : 1.0;
      if (!std::isfinite(anchor.s[j]) || !std::isfinite(anchor.t[j]) || !std::isfinite(c)) bad += 1.0;
      total += anchor.weight(a, j);
    }
    anchor.total = block_sum(b, total, tiles.scratch);
    anchor.finite = block_sum(b, bad, tiles.scratch) == 0.0;
    return anchor;
  }
};

// P_j, N_j and own_j = sum_k max(t_j - t_k, 0) phi'(s_j - s_k) of every thread's candidate j of
// this round (`active`: j < C and w_j != 0), tile by tile. Every thread must call it.
template <class Block>
SDD_KERNEL void ap_counts(Block& b, const ApLossArgs& a, const ApAnchor& anchor, const ApTiles& tiles, int64_t j,
                          bool active, double& P, double& N, double& own) {
  const double sj = active ? anchor.s[j] : 0.0, tj = active ? anchor.t[j] : 0.0;
  double p = 0.0, n = 0.0, slope = 0.0;
  for (int64_t first = 0; first < anchor.C; first += kThreads) {
    const int64_t count = tiles.load(b, anchor.s, anchor.t, nullptr, anchor.C, first);
    for (int64_t k = 0; k < count && active; ++k) {
      const double sk = tiles.s[k], tk = tiles.t[k];
      if (tk >= tj && sk >= sj) p += 1.0;
      const double dt = tj - tk;
      if (dt > 0.0) {
        n += dt * common::ap_step(sj - sk, a.tau, a.hard_step);
        slope += dt * common::ap_step_slope(sj - sk, a.tau, a.hard_step);
      }
    }
  }
  P = p;
  N = a.lam * n;
  own = slope;
}

// loss[a] = sum_j w_j N_j / (P_j + N_j) / sum_j w_j (0 without weight, NaN for a non-finite input).
struct ApLossForwardKernel {
  using Args = ApLossArgs;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const ApTiles tiles = ApTiles::take(b);
    const ApAnchor anchor = ApAnchor::read(b, a, tiles);
    double sum = 0.0;
    for (int64_t base = 0; base < a.C; base += b.threads()) {  // uniform bounds: every thread syncs alike
      const int64_t j = base + b.thread();
      const double w = j < a.C ? anchor.weight(a, j) : 0.0;
      double P, N, own;
      ap_counts(b, a, anchor, tiles, j, w != 0.0 && anchor.finite, P, N, own);
      if (w != 0.0 && anchor.finite) sum += w * N / (P + N);
    }
    sum = block_sum(b, sum, tiles.scratch);
    if (b.thread() == 0) {
      a.loss[b.block_x()] = !anchor.finite ? NAN : anchor.total == 0.0 ? 0.0 : sum / anchor.total;
    }
  }
};

// grad_scores[j] = coef_j own_j - sum_i coef_i max(t_i - t_j, 0) phi'(s_i - s_j), with
// coef_j = grad * w_j P_j / (P_j + N_j)^2 / total * lam.
struct ApLossBackwardKernel {
  using Args = ApLossArgs;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const ApTiles tiles = ApTiles::take(b);
    const ApAnchor anchor = ApAnchor::read(b, a, tiles);
    const int64_t row = b.block_x() * a.C;
    double* grad = a.grad_scores + row;
    double* coef = a.coef + row;
    if (!anchor.finite || anchor.total == 0.0 || a.hard_step) {  // uniform
      for (int64_t j = b.thread(); j < a.C; j += b.threads()) grad[j] = anchor.finite ? 0.0 : NAN;
      return;
    }
    const double g = a.grad[b.block_x()];
    for (int64_t base = 0; base < a.C; base += b.threads()) {
      const int64_t j = base + b.thread();
      const double w = j < a.C ? anchor.weight(a, j) : 0.0;
      double P, N, own;
      ap_counts(b, a, anchor, tiles, j, w != 0.0, P, N, own);
      if (j < a.C) {
        const double c = w != 0.0 ? g * w * P / ((P + N) * (P + N)) / anchor.total * a.lam : 0.0;
        coef[j] = c;
        grad[j] = c * own;
      }
    }
    // Every coef_j is written (global memory, this block's row) before any thread reads it.
    for (int64_t base = 0; base < a.C; base += b.threads()) {
      const int64_t k = base + b.thread();
      const bool active = k < a.C;
      const double sk = active ? anchor.s[k] : 0.0, tk = active ? anchor.t[k] : 0.0;
      double cross = 0.0;
      for (int64_t first = 0; first < a.C; first += kThreads) {
        const int64_t count = tiles.load(b, anchor.s, anchor.t, coef, a.C, first);
        for (int64_t i = 0; i < count && active; ++i) {
          const double dt = tiles.t[i] - tk;
          if (dt > 0.0 && tiles.coef[i] != 0.0) {
            cross += tiles.coef[i] * dt * common::ap_step_slope(tiles.s[i] - sk, a.tau, false);
          }
        }
      }
      if (active) grad[k] -= cross;
    }
  }
};

}  // namespace kernels
}  // namespace sdd
