// Batched k-means as one block per problem: k-means++ seeding (greedy / D^2 / D) from the
// same Philox counters as the CPU kernel, Lloyd iterations with a block-uniform early stop
// (no host sync), final assignment and inertia. Also the labelled-cluster means.
//
// Problem p holds min(M, total - p * M) points of x [P, M, d] (the last one may be smaller:
// dse's last group). Distances are exact squared differences accumulated in fp64, one thread
// per point (a chunk of centroids per pass over its row). Sums over points run in point order, owned per channel:
// the result does not depend on scheduling.
#pragma once

#include <cmath>
#include <cstdint>

#include "../common/philox.h"
#include "block.h"

namespace sdd {
namespace kernels {

enum KmeansSeeding : int { kSeedGreedy = 0, kSeedD2 = 1, kSeedD = 2 };
constexpr int kMaxCandidates = 16;  // 2 + floor(ln k) <= 16 for any k < 1.2e6

template <class T>
struct KmeansArgs {
  const T* x;         // [P, M, d]
  int64_t M, d, k, total;
  int64_t iters;
  double tol;         // relative to the problem's root-mean-square point norm
  int64_t n_init;
  int seeding;        // KmeansSeeding
  int64_t seed;
  uint32_t stream;    // common::RandomStream
  T* centroids;       // [P, k, d]
  int64_t* labels;    // [P, M] (entries past a smaller problem's points are not written)
  double* inertia;    // [P]
  double* work;       // [P, kmeans_work_size(M, d, k)]
  T* trial_centroids;      // [P, k, d] when n_init > 1, else unused
  int64_t* trial_labels;   // [P, M] when n_init > 1, else unused
};

// fp64 workspace per problem: closest [M], cumulative [M], sums [k, d], counts [k].
SDD_HOST_DEVICE int64_t kmeans_work_size(int64_t M, int64_t d, int64_t k) { return 2 * M + k * d + k; }

constexpr int kDistanceChunk = 8;  // rows whose distances one thread accumulates at once

// ||a - c||^2 in fp64.
template <class T>
SDD_KERNEL double squared_distance(const T* a, const T* c, int64_t d) {
  double total = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    const double diff = static_cast<double>(a[j]) - static_cast<double>(c[j]);
    total += diff * diff;
  }
  return total;
}

constexpr int kTile = 16;  // channels per shared-memory tile of the distance passes

// Shared memory of the tiled distance passes: points [kTile, kThreads + 1] (padded: no bank
// conflicts on the transposed store) and rows [kDistanceChunk, kTile], fp64.
inline int64_t distance_tiles_bytes() {
  return shared_size<double>(kTile * (kThreads + 1)) + shared_size<double>(kDistanceChunk * kTile);
}

// Shared memory of a k-means launch.
inline int64_t kmeans_shared_bytes() {
  return shared_size<double>(kReduceScratch) + shared_size<double>(kThreads) + shared_size<int64_t>(kMaxCandidates) +
         distance_tiles_bytes();
}

struct DistanceTiles {
  double* points;
  double* rows;

  SDD_KERNEL static DistanceTiles take(SharedCursor& shared) {
    return DistanceTiles{shared.take<double>(kTile * (kThreads + 1)), shared.take<double>(kDistanceChunk * kTile)};
  }
};

// acc[c] = ||x_i - row(first + c)||^2 for c < count <= kDistanceChunk and the point
// i = base + thread (unspecified when i >= n); row(j) = rows + (index ? index[j] : j) * d. Every
// thread of the block calls it (it syncs): the points are staged through shared memory kTile
// channels at a time, read coalesced, and each thread accumulates its own point in fp64.
template <class Block, class T>
SDD_KERNEL void tiled_distances(Block& b, const T* x, int64_t n, int64_t d, int64_t base, const T* rows,
                                const int64_t* index, int64_t first, int count, const DistanceTiles& tiles,
                                double* acc) {
  const int threads = b.threads(), stride = threads + 1;
  for (int c = 0; c < kDistanceChunk; ++c) acc[c] = 0.0;
  for (int64_t j0 = 0; j0 < d; j0 += kTile) {
    const int width = static_cast<int>(min_of<int64_t>(kTile, d - j0));
    b.sync();  // every thread is done with the previous tile
    for (int e = b.thread(); e < kTile * threads; e += threads) {
      const int r = e / kTile, col = e % kTile;  // point base + r, channel j0 + col
      const int64_t i = base + r;
      tiles.points[col * stride + r] = (i < n && col < width) ? static_cast<double>(x[i * d + j0 + col]) : 0.0;
    }
    for (int e = b.thread(); e < kDistanceChunk * kTile; e += threads) {
      const int c = e / kTile, col = e % kTile;
      double value = 0.0;
      if (c < count && col < width) {
        const int64_t row = index != nullptr ? index[first + c] : first + c;
        value = static_cast<double>(rows[row * d + j0 + col]);
      }
      tiles.rows[c * kTile + col] = value;
    }
    b.sync();
    for (int col = 0; col < width; ++col) {
      const double xv = tiles.points[col * stride + b.thread()];
      for (int c = 0; c < kDistanceChunk; ++c) {
        if (c < count) {
          const double diff = xv - tiles.rows[c * kTile + col];
          acc[c] += diff * diff;
        }
      }
    }
  }
}

// labels[i] = nearest centroid (ties: lowest index; NaN distances never win, so labels stay in
// [0, k) on any input). Every thread calls it; ends with a sync.
template <class Block, class T>
SDD_KERNEL void assign_nearest(Block& b, const T* x, int64_t n, int64_t d, const T* c, int64_t k, int64_t* labels,
                               const DistanceTiles& tiles) {
  double dist[kDistanceChunk];
  for (int64_t base = 0; base < n; base += b.threads()) {
    int64_t best = 0;
    double best_score = INFINITY;
    for (int64_t first = 0; first < k; first += kDistanceChunk) {
      const int count = static_cast<int>(min_of<int64_t>(kDistanceChunk, k - first));
      tiled_distances(b, x, n, d, base, c, nullptr, first, count, tiles, dist);
      for (int j = 0; j < count; ++j) {
        if (dist[j] < best_score) {
          best_score = dist[j];
          best = first + j;
        }
      }
    }
    if (base + b.thread() < n) labels[base + b.thread()] = best;
  }
  b.sync();
}

// sums[c, j] = sum of x[i, j] over points labelled c; counts[c] = their number. Labels outside
// [0, k) are skipped. Thread j owns channel j, points are added in order. Ends with a sync.
template <class Block, class T>
SDD_KERNEL void cluster_sums(Block& b, const T* x, int64_t n, int64_t d, const int64_t* labels, int64_t k,
                             double* sums, double* counts) {
  for (int64_t j = b.thread(); j < d; j += b.threads()) {
    for (int64_t cl = 0; cl < k; ++cl) sums[cl * d + j] = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t cl = labels[i];
      if (cl >= 0 && cl < k) sums[cl * d + j] += static_cast<double>(x[i * d + j]);
    }
  }
  for (int64_t cl = b.thread(); cl < k; cl += b.threads()) {
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i) count += labels[i] == cl;
    counts[cl] = static_cast<double>(count);
  }
  b.sync();
}

// Number of labels outside [0, k), the same on every thread.
template <class Block>
SDD_KERNEL double count_bad_labels(Block& b, const int64_t* labels, int64_t n, int64_t k, double* scratch) {
  double bad = 0.0;
  for (int64_t i = b.thread(); i < n; i += b.threads()) bad += (labels[i] < 0 || labels[i] >= k) ? 1.0 : 0.0;
  return block_sum(b, bad, scratch);
}

template <class T>
struct KmeansKernel {
  using Args = KmeansArgs<T>;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t p = b.block_x();
    const int64_t n = problem_size(p, a.M, a.total), d = a.d, k = a.k;
    const T* x = a.x + p * a.M * d;
    double* work = a.work + p * kmeans_work_size(a.M, d, k);
    SharedCursor shared(b.shared_bytes());
    double* scratch = shared.take<double>(kReduceScratch);
    double* thread_totals = shared.take<double>(kThreads);
    int64_t* candidates = shared.take<int64_t>(kMaxCandidates);
    const DistanceTiles tiles = DistanceTiles::take(shared);

    double squares = 0.0;
    for (int64_t e = b.thread(); e < n * d; e += b.threads()) squares += static_cast<double>(x[e]) * x[e];
    const double rms = sqrt(block_sum(b, squares, scratch) / static_cast<double>(n));
    const double threshold = a.tol * rms;

    T* out_c = a.centroids + p * k * d;
    int64_t* out_l = a.labels + p * a.M;
    double best = 0.0;
    for (int64_t init = 0; init < a.n_init; ++init) {
      T* c = init == 0 ? out_c : a.trial_centroids + p * k * d;
      int64_t* l = init == 0 ? out_l : a.trial_labels + p * a.M;
      seed_centroids(b, a, p, init, x, n, c, work, scratch, thread_totals, candidates, tiles);
      const double inertia = lloyd(b, a, x, n, c, l, work, scratch, threshold, tiles);
      if (init == 0 || inertia < best) {  // ties: the earlier run (uniform over the block)
        best = inertia;
        if (init > 0) {
          for (int64_t e = b.thread(); e < k * d; e += b.threads()) out_c[e] = c[e];
          for (int64_t i = b.thread(); i < n; i += b.threads()) out_l[i] = l[i];
        }
      }
      b.sync();
    }
    if (b.thread() == 0) a.inertia[p] = best;
  }

 private:
  SDD_KERNEL static double weight(const Args& a, double squared) {
    return a.seeding == kSeedD ? sqrt(squared) : squared;
  }

  SDD_KERNEL static double draw(const Args& a, int64_t p, int64_t init, int64_t step, int64_t candidate) {
    const int64_t counter = ((init * a.k + step) * 16) + candidate;  // as the CPU kernel
    return common::random_unit(a.seed, static_cast<common::RandomStream>(a.stream), p, counter);
  }

  template <class Block>
  SDD_KERNEL static void copy_row(Block& b, const T* from, T* to, int64_t d) {
    for (int64_t j = b.thread(); j < d; j += b.threads()) to[j] = from[j];
  }

  // k-means++ seeding (SPEC "k-means"); closest [n] holds each point's squared distance to the
  // nearest chosen seed, cumulative [n] the running sum of the sampling weights.
  template <class Block>
  SDD_KERNEL static void seed_centroids(Block& b, const Args& a, int64_t p, int64_t init, const T* x, int64_t n,
                                        T* c, double* work, double* scratch, double* thread_totals,
                                        int64_t* candidates, const DistanceTiles& tiles) {
    const int64_t d = a.d, k = a.k;
    double* closest = work;
    double* cumulative = work + a.M;
    double dist[kDistanceChunk];
    const int64_t first = min_of<int64_t>(n - 1, static_cast<int64_t>(draw(a, p, init, 0, 0) * n));
    copy_row(b, x + first * d, c, d);
    if (b.thread() == 0) candidates[0] = first;  // read after tiled_distances' first sync
    for (int64_t base = 0; base < n; base += b.threads()) {
      tiled_distances(b, x, n, d, base, x, candidates, 0, 1, tiles, dist);
      if (base + b.thread() < n) closest[base + b.thread()] = dist[0];
    }
    b.sync();
    const int n_candidates =
        a.seeding == kSeedGreedy ? min_of<int>(kMaxCandidates, 2 + static_cast<int>(log(static_cast<double>(k)))) : 1;
    const int64_t chunk = (n + b.threads() - 1) / b.threads();
    const int64_t begin = min_of<int64_t>(n, b.thread() * chunk), end = min_of<int64_t>(n, begin + chunk);
    for (int64_t step = 1; step < k; ++step) {
      // cumulative sampling weights: a chunk per thread, then the prefix of the chunk totals
      double own = 0.0;
      for (int64_t i = begin; i < end; ++i) own += weight(a, closest[i]);
      thread_totals[b.thread()] = own;
      b.sync();
      double prefix = 0.0, total = 0.0;
      for (int t = 0; t < b.threads(); ++t) {
        if (t < b.thread()) prefix += thread_totals[t];
        total += thread_totals[t];
      }
      for (int64_t i = begin; i < end; ++i) cumulative[i] = (prefix += weight(a, closest[i]));
      b.sync();
      if (b.thread() < n_candidates) {  // first index whose cumulative weight exceeds the target
        const double target = draw(a, p, init, step, b.thread()) * total;
        int64_t lo = 0, hi = n;
        while (lo < hi) {
          const int64_t mid = lo + (hi - lo) / 2;
          if (cumulative[mid] > target) hi = mid; else lo = mid + 1;
        }
        candidates[b.thread()] = min_of<int64_t>(lo, n - 1);
      }
      b.sync();
      // potential of each candidate: sum of weights after adding it
      double potential[kMaxCandidates];
      for (int j = 0; j < kMaxCandidates; ++j) potential[j] = 0.0;
      for (int64_t base = 0; base < n; base += b.threads()) {
        const int64_t i = base + b.thread();
        for (int chunk_first = 0; chunk_first < n_candidates; chunk_first += kDistanceChunk) {
          const int count = min_of(kDistanceChunk, n_candidates - chunk_first);
          tiled_distances(b, x, n, d, base, x, candidates, chunk_first, count, tiles, dist);
          for (int j = 0; j < kDistanceChunk; ++j) {
            if (j < count && i < n) potential[chunk_first + j] += weight(a, min_of(closest[i], dist[j]));
          }
        }
      }
      int chosen = 0;
      double best_potential = 0.0;
      for (int j = 0; j < kMaxCandidates; ++j) {
        if (j >= n_candidates) break;
        const double total_j = block_sum(b, potential[j], scratch);
        if (j == 0 || total_j < best_potential) {
          best_potential = total_j;
          chosen = j;
        }
      }
      copy_row(b, x + candidates[chosen] * d, c + step * d, d);
      for (int64_t base = 0; base < n; base += b.threads()) {
        tiled_distances(b, x, n, d, base, x, candidates + chosen, 0, 1, tiles, dist);
        if (base + b.thread() < n) closest[base + b.thread()] = min_of(closest[base + b.thread()], dist[0]);
      }
      b.sync();
    }
  }

  // Lloyd iterations from the seeds in c; returns the inertia of the final assignment.
  template <class Block>
  SDD_KERNEL static double lloyd(Block& b, const Args& a, const T* x, int64_t n, T* c, int64_t* labels,
                                 double* work, double* scratch, double threshold, const DistanceTiles& tiles) {
    const int64_t d = a.d, k = a.k;
    double* sums = work + 2 * a.M;
    double* counts = sums + k * d;
    for (int64_t it = 0; it < a.iters; ++it) {
      assign_nearest(b, x, n, d, c, k, labels, tiles);
      cluster_sums(b, x, n, d, labels, k, sums, counts);
      double shift = 0.0;
      for (int64_t e = b.thread(); e < k * d; e += b.threads()) {
        const double count = counts[e / d];
        if (count == 0.0) continue;  // an empty cluster keeps its centroid
        const T updated = static_cast<T>(sums[e] / count);
        const double diff = static_cast<double>(updated) - static_cast<double>(c[e]);
        shift += diff * diff;
        c[e] = updated;
      }
      if (sqrt(block_sum(b, shift, scratch)) < threshold) break;  // the same decision on every thread
    }
    assign_nearest(b, x, n, d, c, k, labels, tiles);
    double inertia = 0.0;
    for (int64_t i = b.thread(); i < n; i += b.threads()) inertia += squared_distance(x + i * d, c + labels[i] * d, d);
    return block_sum(b, inertia, scratch);
  }
};

// Means of labelled clusters (dse with caller-given global labels): centroids [P, k, d] (zero
// rows for empty clusters), counts [P, k]. A problem with a label outside [0, k) gets NaN
// centroids and zero counts.
template <class T>
struct ClusterMeansArgs {
  const T* x;                // [P, M, d]
  const int64_t* labels;     // [P, M]
  int64_t M, d, k, total;
  T* centroids;              // [P, k, d]
  int64_t* counts;           // [P, k]
  double* work;              // [P, k * d + k]
};

template <class T>
struct ClusterMeansKernel {
  using Args = ClusterMeansArgs<T>;

  template <class Block>
  SDD_KERNEL static void run(Block& b, const Args& a) {
    const int64_t p = b.block_x(), d = a.d, k = a.k;
    const int64_t n = problem_size(p, a.M, a.total);
    const int64_t* labels = a.labels + p * a.M;
    double* scratch = reinterpret_cast<double*>(b.shared_bytes());
    double* sums = a.work + p * (k * d + k);
    double* counts = sums + k * d;
    const bool bad = count_bad_labels(b, labels, n, k, scratch) > 0.0;
    cluster_sums(b, a.x + p * a.M * d, n, d, labels, k, sums, counts);
    T* c = a.centroids + p * k * d;
    for (int64_t e = b.thread(); e < k * d; e += b.threads()) {
      const double count = counts[e / d];
      c[e] = bad ? static_cast<T>(NAN) : count > 0.0 ? static_cast<T>(sums[e] / count) : T(0);
    }
    for (int64_t cl = b.thread(); cl < k; cl += b.threads()) {
      a.counts[p * k + cl] = bad ? 0 : static_cast<int64_t>(counts[cl]);
    }
  }
};

}  // namespace kernels
}  // namespace sdd
