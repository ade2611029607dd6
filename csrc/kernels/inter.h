// Distance of every point to the nearest centroid other than its own (M_inter), its backward
// pass, and the Philox keys of dse's patch permutation.
#pragma once

#include <cmath>
#include <cstdint>

#include "../common/philox.h"
#include "block.h"
#include "kmeans.h"  // tiled_distances, squared_distance, count_bad_labels

namespace sdd {
namespace kernels {

template <class T>
struct InterArgs {
  const T* x;              // [P, M, d]
  const T* centroids;      // [P, k, d]
  const int64_t* labels;   // [P, M]
  const int64_t* counts;   // [P, k] only centroids of counts > 0 compete; nullptr: all do
  int64_t M, d, k, total;
  int64_t* other;          // [P, M] forward output: nearest other centroid, -1 when none
  double* mean;            // [P]    forward output: mean distance over the problem's points
  const double* grad_mean; // [P]    backward: d loss / d mean
  double* coeff;           // [P, M] backward workspace
  T* grad_x;               // [P, M, d] backward: += gradient
  T* grad_centroids;       // [P, k, d] backward: written (nullptr: not wanted)
};

// One block per problem. A label outside [0, k) makes the problem's mean NaN.
template <class T>
struct InterForwardKernel {
  using Args = InterArgs<T>;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t p = b.block_x(), d = a.d, k = a.k;
    const int64_t n = problem_size(p, a.M, a.total);
    const T* x = a.x + p * a.M * d;
    const T* c = a.centroids + p * k * d;
    const int64_t* labels = a.labels + p * a.M;
    const int64_t* counts = a.counts != nullptr ? a.counts + p * k : nullptr;
    SharedCursor shared(b.shared_bytes());
    double* scratch = shared.take<double>(kReduceScratch);
    const DistanceTiles tiles = DistanceTiles::take(shared);
    const bool bad = count_bad_labels(b, labels, n, k, scratch) > 0.0;  // uniform: the loops below stay so
    double total = 0.0, dist[kDistanceChunk];
    for (int64_t base = 0; base < n; base += b.threads()) {
      const int64_t i = base + b.thread();
      const int64_t own = i < n ? labels[i] : -1;
      int64_t best = -1;
      double best_score = INFINITY;
      for (int64_t first = 0; first < k && !bad; first += kDistanceChunk) {
        const int count = static_cast<int>(min_of<int64_t>(kDistanceChunk, k - first));
        tiled_distances(b, x, n, d, base, c, nullptr, first, count, tiles, dist);
        for (int j = 0; j < count; ++j) {
          const int64_t cl = first + j;
          if (cl == own || (counts != nullptr && counts[cl] == 0)) continue;
          if (best < 0 || dist[j] < best_score) {
            best_score = dist[j];
            best = cl;
          }
        }
      }
      if (i < n) {
        a.other[p * a.M + i] = best;
        if (best >= 0) total += sqrt(best_score);
      }
    }
    total = block_sum(b, total, scratch);
    if (b.thread() == 0) a.mean[p] = bad ? NAN : total / static_cast<double>(n);
  }
};

// grad_x[i] += g / n * u_i and grad_centroids[other_i] -= g / n * u_i, u_i the unit vector
// from centroid other_i to x_i (0 for a point on it). One block per problem.
template <class T>
struct InterBackwardKernel {
  using Args = InterArgs<T>;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t p = b.block_x(), d = a.d, k = a.k;
    const int64_t n = problem_size(p, a.M, a.total);
    const T* x = a.x + p * a.M * d;
    const T* c = a.centroids + p * k * d;
    const int64_t* other = a.other + p * a.M;
    double* coeff = a.coeff + p * a.M;
    const double g = a.grad_mean[p] / static_cast<double>(n);
    for (int64_t i = b.thread(); i < n; i += b.threads()) {
      const int64_t o = other[i];
      double w = 0.0;
      if (o >= 0 && o < k) {
        const double sq = squared_distance(x + i * d, c + o * d, d);
        w = sq > 0.0 ? g / sqrt(sq) : 0.0;  // a point on the centroid: subgradient 0
        for (int64_t j = 0; j < d && w != 0.0; ++j) {
          const double diff = static_cast<double>(x[i * d + j]) - static_cast<double>(c[o * d + j]);
          T& out = a.grad_x[p * a.M * d + i * d + j];
          out = static_cast<T>(static_cast<double>(out) + w * diff);
        }
      }
      coeff[i] = w;
    }
    if (a.grad_centroids == nullptr) return;  // uniform
    b.sync();
    for (int64_t j = b.thread(); j < d; j += b.threads()) {  // thread j owns channel j of every centroid
      T* gc = a.grad_centroids + p * k * d;
      for (int64_t cl = 0; cl < k; ++cl) gc[cl * d + j] = T(0);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t o = other[i];
        if (o < 0 || o >= k || coeff[i] == 0.0) continue;
        const double diff = static_cast<double>(x[i * d + j]) - static_cast<double>(c[o * d + j]);
        gc[o * d + j] = static_cast<T>(static_cast<double>(gc[o * d + j]) - coeff[i] * diff);
      }
    }
  }
};

// keys[b, n] = Philox draw (seed, image b, patch n): sorting a row (stable) gives dse's
// permutation of that image's patches, as csrc/cpu/patch_permutation.cpp does.
struct PatchKeysArgs {
  int64_t seed, batch, patches;
  int64_t* keys;  // [batch, patches]
};

struct PatchKeysKernel {
  using Args = PatchKeysArgs;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t count = a.batch * a.patches, stride = static_cast<int64_t>(b.blocks_x()) * b.threads();
    for (int64_t e = static_cast<int64_t>(b.block_x()) * b.threads() + b.thread(); e < count; e += stride) {
      a.keys[e] = common::random_u32(a.seed, common::RandomStream::kPatchPermutation, e / a.patches, e % a.patches);
    }
  }
};

}  // namespace kernels
}  // namespace sdd
