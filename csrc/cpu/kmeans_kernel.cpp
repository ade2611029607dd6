// k-means on the CPU: greedy / D^2 / D k-means++ seeding from Philox draws, then Lloyd
// iterations with early stop. One problem per task; distances come from dot products
// (||x||^2 - 2 x.c + ||c||^2: row_dots in float32, BLAS in float64), exact differences are used for
// reported quantities.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "../common/philox.h"
#include "aligned_vector.h"
#include "kernels.h"
#include "parallel_tasks.h"
#include "tensor_utils.h"
#include "row_products.h"  // squared_distance: the same value for the same pair, every caller
#include "work_counters.h"

namespace sdd {
namespace cpu {
namespace {

// First index whose cumulative weight exceeds `target`; never a zero-weight point unless all
// weights are zero (or not finite), then the last index. Always terminates.
int64_t sample_index(const double* cumulative, int64_t count, double target) {
  const double* it = std::upper_bound(cumulative, cumulative + count, target);
  return it == cumulative + count ? count - 1 : static_cast<int64_t>(it - cumulative);
}

// Greedy seeding's candidates up to which the points go in classes of one set of candidates (2 + ln k
// <= 6 for k < 1097; candidate_products).
constexpr int64_t kClassCandidates = 6;

constexpr double kMargin = 1e-9;  // relative: covers the fp64 rounding of bounds and distances
constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kInfinity = std::numeric_limits<double>::infinity();

// A lower bound of a point's distance to a centroid (see assign_bounded): its stored Elkan bound less
// the centroid's movement since (less the rounding of the two), or twice the half distance from the
// point's own centroid less `upper` (the point's distance to its own centroid, or more); less the
// rounding margin.
inline double centroid_lower_bound(double stored, double moved, double half_from_own, double upper) {
  const double from_point = (stored - moved) - 4.0 * kEps * (stored + moved);
  const double from_centroids = 2.0 * half_from_own - upper;
  return std::max(from_point, from_centroids) * (1.0 - kMargin);
}

// Elkan's per-centroid test of one point whose centroid is `own`, its distance to it at most `upper`
// (`reach` with the rounding margin): every other centroid cl has the lower bound
// centroid_lower_bound(stored[cl], moved[cl], half_from_own[cl], upper). Those not beyond reach go, in
// order, into candidates; returns their count, and in *ruled_out the least bound of the others (+inf
// when none). Not inlined: its own registers keep the running minimum (inlined, GCC keeps it in
// memory, a store-to-load chain per centroid), and no branch depends on the test (its outcome varies
// from point to point).
__attribute__((noinline)) int64_t elkan_candidates(const double* stored, const double* moved,
                                                   const double* half_from_own, int64_t k, int64_t own, double upper,
                                                   double reach, int64_t* candidates, double* ruled_out) {
  double least = std::numeric_limits<double>::infinity();
  int64_t count = 0;
  for (int64_t cl = 0; cl < k; ++cl) {
    const double other = centroid_lower_bound(stored[cl], moved[cl], half_from_own[cl], upper);
    const bool out = reach < other;
    least = out && cl != own && other < least ? other : least;
    candidates[count] = cl;
    count += !out && cl != own;
  }
  *ruled_out = least;
  return count;
}

// The k-means++ potential of every candidate j < C (the sum over points of the weight of each
// point's squared distance to its nearest seed once j is added; weight: the distance itself with
// `root`, D seeding) in one pass over the points: C running sums, each in point order (the sums of
// one pass per candidate, bit for bit), whose chains of additions overlap. Point i's trial distance
// to candidate j: from its product dots[j n + slot[i]] where slot[i] >= 0, else none (the seed's).
// running [C, M] <- every sum after each point: the winner's are the next step's cumulative weights.
template <int C, typename dot_t>
void potentials_of(const double* closest, const int64_t* slot, const double* norms, const dot_t* dots, int64_t n,
                   const double* cand_norms, int64_t M, bool root, double* potentials, double* running) {
  double sums[C] = {};
  for (int64_t i = 0; i < M; ++i) {
    const int64_t at = slot[i] >= 0 ? slot[i] : 0;  // no branch on it: the pruning varies point to point
    for (int j = 0; j < C; ++j) {
      const double sq = n > 0 ? std::max(0.0, norms[i] - 2.0 * dots[j * n + at] + cand_norms[j]) : 0.0;
      const double trial = slot[i] >= 0 ? std::min(closest[i], sq) : closest[i];
      sums[j] += root ? std::sqrt(trial) : trial;
      running[j * M + i] = sums[j];
    }
  }
  for (int j = 0; j < C; ++j) potentials[j] = sums[j];
}

// potentials_of for `count` candidates: unrolled up to 6 (greedy seeding's 2 + ln k for k < 1097),
// more one at a time.
template <typename dot_t>
void candidate_potentials(int64_t count, const double* closest, const int64_t* slot, const double* norms,
                          const dot_t* dots, int64_t n, const double* cand_norms, int64_t M, bool root,
                          double* potentials, double* running) {
  switch (count) {
    case 1: return potentials_of<1>(closest, slot, norms, dots, n, cand_norms, M, root, potentials, running);
    case 2: return potentials_of<2>(closest, slot, norms, dots, n, cand_norms, M, root, potentials, running);
    case 3: return potentials_of<3>(closest, slot, norms, dots, n, cand_norms, M, root, potentials, running);
    case 4: return potentials_of<4>(closest, slot, norms, dots, n, cand_norms, M, root, potentials, running);
    case 5: return potentials_of<5>(closest, slot, norms, dots, n, cand_norms, M, root, potentials, running);
    case 6: return potentials_of<6>(closest, slot, norms, dots, n, cand_norms, M, root, potentials, running);
    default:
      for (int64_t j = 0; j < count; ++j) {
        potentials_of<1>(closest, slot, norms, dots + j * n, n, cand_norms + j, M, root, potentials + j,
                         running + j * M);
      }
  }
}

template <typename scalar_t>
class KmeansSolver {
 public:
  KmeansSolver(const at::Tensor& x, const KmeansOptions& options, common::RandomStream stream,
               int64_t problem, const double* norms)
      : x_(x), opt_(options), stream_(stream), problem_(problem), M_(x.size(0)), d_(x.size(1)),
        data_(x.data_ptr<scalar_t>()),
        x_norms_(norms != nullptr ? std::vector<double>(norms, norms + M_) : squared_norms(data_, M_, d_)) {
    double squares = 0.0;
    for (double norm : x_norms_) squares += norm;
    threshold_ = opt_.tol * std::sqrt(squares / static_cast<double>(M_));  // tol x RMS point norm (SPEC)
    dot_error_ = dot_product_error(d_, std::numeric_limits<scalar_t>::epsilon() / 2.0);
    scratch_dots_ = at::empty({opt_.k, M_}, x_.options());
  }

  // One seeding + Lloyd run; writes centroids [k, d] and labels [M]; returns the inertia (NaN
  // without want_inertia). With `others`: each point's nearest other centroid [M] (nearest_others),
  // and the sum of the distances to them in *other_total.
  double run(int64_t init, at::Tensor& centroids, int64_t* labels, bool want_inertia, int64_t* others = nullptr,
             double* other_total = nullptr) {
    const int64_t k = opt_.k;
    const bool bounded = !plain_lloyd().load(std::memory_order_relaxed);
    upper_.assign(M_, 0.0);
    lower_.assign(M_, 0.0);
    elkan_.assign(M_ * k, 0.0);  // the seeding fills it
    moved_.assign(k, 0.0);
    candidates_.resize(k);
    seed_centroids(init, centroids);
    scalar_t* c = centroids.data_ptr<scalar_t>();
    drift_.assign(k, 0.0);
    version_.assign(k, 0);     // bumped whenever a centroid changes (update_centroids)
    own_version_.assign(M_, -1);  // no point's own distance bounds kept yet
    own_label_.assign(M_, -1);
    own_.resize(M_);
    half_between_.assign(k * k, 0.0);
    half_versions_.assign(k * k, {-1, -1});  // no half distance taken yet
    sums_.assign(k * d_, 0.0);
    counts_.assign(k, 0);
    std::vector<char> dirty(k, 1);  // clusters whose members changed since their sum was taken
    std::vector<int64_t> previous(M_);
    if (bounded) {
      assign_from_seeding(centroids, labels);
    } else {
      assign_all(centroids, labels);
    }
    int64_t updates = 0;
    for (int64_t it = 0; it < opt_.iters; ++it) {
      const double shift = update_centroids(c, labels, dirty);
      ++updates;
      std::copy(labels, labels + M_, previous.begin());
      if (bounded) {
        assign_bounded(centroids, labels);
      } else {
        assign_all(centroids, labels);
      }
      std::fill(dirty.begin(), dirty.end(), 0);
      for (int64_t i = 0; i < M_; ++i) {
        if (labels[i] != previous[i]) dirty[labels[i]] = dirty[previous[i]] = 1;
      }
      if (std::sqrt(shift) < threshold_) break;
    }
    WorkCounters& work = work_counters();
    work.kmeans_runs.fetch_add(1, std::memory_order_relaxed);
    work.lloyd_iterations.fetch_add(updates, std::memory_order_relaxed);
    work.lloyd_point_iterations.fetch_add((updates + 1) * M_, std::memory_order_relaxed);
    if (others != nullptr) *other_total = nearest_others(centroids, labels, others);
    if (!want_inertia) return std::numeric_limits<double>::quiet_NaN();
    double inertia = 0.0;
    for (int64_t i = 0; i < M_; ++i) inertia += squared_distance(data_ + i * d_, c + labels[i] * d_, d_);
    return inertia;
  }

  // The nearest centroid to each point other than its own, as nearest_other_centroid finds it for
  // these centroids and labels (the same indices and distances, bit for bit), mostly from the bounds
  // the last assignment left: the other centroids are taken in order of their lower bound
  // (centroid_lower_bound), each distance bounded in float32 (distance_bounds), until the next lower
  // bound is beyond the least upper one; of those, the ones whose lower bound is not beyond it get
  // float64 distances. A point that would take more than kBoundedOthers (where the other centroids
  // are all about equally far, as in high dimensions they can be) goes with the others like it
  // through products (nearest_others_from_products). others [M] (-1 when k == 1); returns the sum
  // over points (in order) of the distance to it.
  double nearest_others(const at::Tensor& centroids, const int64_t* labels, int64_t* others) {
    constexpr int64_t kBoundedOthers = 8;
    const int64_t k = opt_.k;
    const scalar_t* c = centroids.data_ptr<scalar_t>();
    std::vector<double>& bound = approx_;  // [k]: lower bounds of the centroids not yet taken
    bound.resize(k);
    candidate_bounds_.resize(k);
    other_distance_.resize(M_);
    need_.clear();
    int64_t evaluated = 0;
    for (int64_t i = 0; i < M_; ++i) {
      const int64_t a = labels[i];
      const double* stored = elkan_.data() + i * k;
      const double* half = half_between_.data() + a * k;
      for (int64_t cl = 0; cl < k; ++cl) {
        const double lower = std::max(0.0, centroid_lower_bound(stored[cl], moved_[cl], half[cl], upper_[i]));
        bound[cl] = cl == a ? kInfinity : lower;
      }
      double least_upper = kInfinity;  // squared
      int64_t taken = 0;
      bool many = false;  // more than kBoundedOthers centroids to take
      for (;;) {
        int64_t next = 0;  // the least bound left (ties: the lowest index)
        for (int64_t cl = 1; cl < k; ++cl) next = bound[cl] < bound[next] ? cl : next;
        if (bound[next] == kInfinity || !(bound[next] * bound[next] <= least_upper)) break;  // inf: none left
        if (taken == kBoundedOthers) {
          many = true;
          break;
        }
        candidates_[taken] = next;
        candidate_bounds_[taken] = distance_bounds(data_ + i * d_, c + next * d_);
        least_upper = std::min(least_upper, candidate_bounds_[taken].upper);
        bound[next] = kInfinity;
        ++taken;
      }
      evaluated += taken;
      if (many) {
        need_.push_back(i);
        continue;
      }
      int64_t best = -1;
      double best_sq = kInfinity;
      for (int64_t j = 0; j < taken; ++j) {
        // The margin covers the float64 distances' rounding: a centroid whose float64 distance may be
        // the least is never skipped.
        if (candidate_bounds_[j].lower > least_upper * (1.0 + kMargin)) continue;
        const int64_t cl = candidates_[j];
        const double sq = squared_distance(data_ + i * d_, c + cl * d_, d_);
        if (sq < best_sq || (sq == best_sq && cl < best)) {
          best_sq = sq;
          best = cl;
        }
      }
      others[i] = best;
      other_distance_[i] = best >= 0 ? std::sqrt(best_sq) : 0.0;
    }
    const int64_t n = static_cast<int64_t>(need_.size());
    if (n > 0) {
      at::Tensor dots = scratch_dots_.view(-1).narrow(0, 0, k * n).view({k, n});
      point_dots(centroids, x_, need_.data(), n, dots);
      nearest_others_from_products(x_, x_norms_.data(), centroids, labels, {}, need_.data(), n, dots, others,
                                   other_distance_.data());
      evaluated += n * k;
    }
    work_counters().other_distances.fetch_add(evaluated, std::memory_order_relaxed);
    double total = 0.0;
    for (double distance : other_distance_) total += distance;
    return total;
  }

 private:
  // Means of the clusters from `labels`: only the dirty clusters' sums are taken again (from zero,
  // points in index order: the sum plain Lloyd takes every iteration, bit for bit). Writes each
  // centroid's movement to drift_ and returns the squared Frobenius norm of the total shift.
  double update_centroids(scalar_t* c, const int64_t* labels, const std::vector<char>& dirty) {
    const int64_t k = opt_.k;
    for (int64_t cl = 0; cl < k; ++cl) {
      if (!dirty[cl]) continue;
      std::fill(sums_.begin() + cl * d_, sums_.begin() + (cl + 1) * d_, 0.0);
      counts_[cl] = 0;
    }
    for (int64_t i = 0; i < M_; ++i) {
      if (!dirty[labels[i]]) continue;
      add_row(&sums_[labels[i] * d_], data_ + i * d_, d_);
      ++counts_[labels[i]];
    }
    double shift = 0.0;
    for (int64_t cl = 0; cl < k; ++cl) {
      drift_[cl] = 0.0;
      // Unchanged sums give the same mean; an empty cluster keeps its centroid.
      if (!dirty[cl] || counts_[cl] == 0) continue;
      double moved = 0.0;
      bool changed = false;
      for (int64_t j = 0; j < d_; ++j) {
        const scalar_t updated = static_cast<scalar_t>(sums_[cl * d_ + j] / counts_[cl]);
        const double diff = static_cast<double>(updated) - c[cl * d_ + j];
        moved += diff * diff;
        changed = changed || updated != c[cl * d_ + j];
        c[cl * d_ + j] = updated;
      }
      shift += moved;
      drift_[cl] = std::sqrt(moved);
      version_[cl] += changed;
    }
    return shift;
  }

  // Nearest centroid of every point (ties: lowest index), from the dot products of all points.
  void assign_all(const at::Tensor& centroids, int64_t* labels) {
    work_counters().distances_full.fetch_add(M_ * opt_.k, std::memory_order_relaxed);
    prepare_centroids(centroids);
    rank_rows(nullptr, M_, centroids, labels);
  }

  // The first assignment, to the seeds, from what the seeding learnt: each point's nearest seed as
  // far as its computed distances tell (owner_, closest_ within slack_) and a lower bound of its
  // distance to every other seed (elkan_). Where the seed is nearer than every other even with the
  // errors, it is the exact nearest; the other points are ranked against every seed (rank_rows).
  void assign_from_seeding(const at::Tensor& centroids, int64_t* labels) {
    const int64_t k = opt_.k;
    work_counters().distances_full.fetch_add(M_ * k, std::memory_order_relaxed);
    prepare_centroids(centroids);
    need_.clear();
    for (int64_t i = 0; i < M_; ++i) {
      const int64_t a = owner_[i];
      const double upper = reach_[i];  // sqrt(closest_[i] + slack_[i])
      double other = std::numeric_limits<double>::infinity();
      for (int64_t cl = 0; cl < k; ++cl) other = cl != a ? std::min(other, elkan_[i * k + cl]) : other;
      if (upper * (1.0 + kMargin) < other * (1.0 - kMargin)) {
        labels[i] = a;
        upper_[i] = upper;
        lower_[i] = other * (1.0 - kMargin);
      } else {
        need_.push_back(i);
      }
    }
    const int64_t n = static_cast<int64_t>(need_.size());
    if (n > 0) rank_rows(need_.data(), n, centroids, labels);
  }

  // Bounds (Hamerly, SIAM SDM 2010; Elkan, ICML 2003): upper_[i] >= ||x_i - c_label||, lower_[i] <= the
  // distance to every other centroid, and per centroid c, elkan_[i k + c] - moved_[c] <= ||x_i - c||
  // (stored with the centroids' cumulative movement at the time, so that a move costs nothing per
  // point). After the centroids move by drift_, a point keeps its label without any distance when
  // upper < max(lower, half the distance from its centroid to the nearest other one); else its upper
  // bound is made exact and the test repeated; else every other centroid c is tested on its own:
  // it is no closer when upper < its lower bound or upper < half the distance between the two
  // centroids. The centroids not ruled out get their distances one by one (settle), or, after a near
  // tie, every centroid its distance (rank_rows). Bounds are strict and carry the rounding margins,
  // so a kept label is the exact nearest centroid, the one plain Lloyd picks: both give identical
  // labels and centroids.
  void assign_bounded(const at::Tensor& centroids, int64_t* labels) {
    const int64_t k = opt_.k;
    work_counters().distances_full.fetch_add(M_ * k, std::memory_order_relaxed);
    prepare_centroids(centroids);
    const scalar_t* c = centroids.data_ptr<scalar_t>();
    int64_t far = 0;  // the centroid that moved most, and the largest and second largest moves
    for (int64_t cl = 1; cl < k; ++cl) far = drift_[cl] > drift_[far] ? cl : far;
    double second = 0.0;
    for (int64_t cl = 0; cl < k; ++cl) second = cl != far ? std::max(second, drift_[cl]) : second;
    for (int64_t cl = 0; cl < k; ++cl) moved_[cl] += drift_[cl];
    // Half the distance between every two centroids, or less (distance_bounds), [k, k]; and from each
    // centroid to its nearest other one. A pair of centroids unchanged since its bound was taken keeps
    // it (distance_bounds would give the same bits).
    half_gap_.assign(k, std::numeric_limits<double>::infinity());
    for (int64_t a = 0; a < k; ++a) {
      for (int64_t b = a + 1; b < k; ++b) {
        if (half_versions_[a * k + b] != std::make_pair(version_[a], version_[b])) {
          const double half = 0.5 * std::sqrt(distance_bounds(c + a * d_, c + b * d_).lower);
          half_between_[a * k + b] = half_between_[b * k + a] = half;
          half_versions_[a * k + b] = {version_[a], version_[b]};
        }
        half_gap_[a] = std::min(half_gap_[a], half_between_[a * k + b]);
        half_gap_[b] = std::min(half_gap_[b], half_between_[a * k + b]);
      }
    }
    need_.clear();
    int64_t evaluated = 0;  // distances taken here (own centroids, candidates), counted once at the end
    for (int64_t i = 0; i < M_; ++i) {
      const int64_t a = labels[i];
      upper_[i] += drift_[a];
      lower_[i] -= a == far ? second : drift_[far];
      const double bound = std::max(lower_[i], half_gap_[a]) * (1.0 - kMargin);
      if (upper_[i] * (1.0 + kMargin) < bound) continue;
      // The bounds of its distance to its own centroid: kept while both are unchanged.
      if (own_version_[i] != version_[a] || own_label_[i] != a) {
        own_[i] = distance_bounds(data_ + i * d_, c + a * d_);
        own_version_[i] = version_[a];
        own_label_[i] = a;
        ++evaluated;
      }
      const DistanceBounds own = own_[i];
      upper_[i] = std::sqrt(own.upper);
      if (upper_[i] * (1.0 + kMargin) < bound) continue;
      const double upper = upper_[i], reach = upper * (1.0 + kMargin);
      double ruled_out;  // a lower bound of the distance to every centroid ruled out, for lower_
      const int64_t count = elkan_candidates(elkan_.data() + i * k, moved_.data(), half_between_.data() + a * k, k, a,
                                             upper, reach, candidates_.data(), &ruled_out);
      if (count == 0) {
        lower_[i] = std::max(lower_[i], ruled_out);
        continue;
      }
      evaluated += count;
      if (!settle(i, own, ruled_out, count, c, labels)) need_.push_back(i);
    }
    work_counters().distances_computed.fetch_add(evaluated, std::memory_order_relaxed);
    const int64_t n = static_cast<int64_t>(need_.size());
    if (n > 0) rank_rows(need_.data(), n, centroids, labels);
  }

  // Point i, whose centroid's distance bounds are `own`, against the first `count` centroids in
  // candidates_ (the others are farther than its centroid, and at least `ruled_out` away): each
  // distance in float32 with its error bound. When one of them is nearer than all the others even
  // with the errors, it is the exact nearest centroid: label and bounds are set, true returned. A
  // near tie returns false, and the point is ranked against every centroid (rank_rows).
  bool settle(int64_t i, const DistanceBounds& own, double ruled_out, int64_t count, const scalar_t* c,
              int64_t* labels) {
    const int64_t a = labels[i];
    candidate_bounds_.resize(count);
    int64_t best = -1;  // index into candidates_, -1: the own centroid
    double best_upper = own.upper;
    for (int64_t j = 0; j < count; ++j) {
      candidate_bounds_[j] = distance_bounds(data_ + i * d_, c + candidates_[j] * d_);
      if (candidate_bounds_[j].upper < best_upper) {
        best_upper = candidate_bounds_[j].upper;
        best = j;
      }
    }
    double nearest_other = best >= 0 ? own.lower : std::numeric_limits<double>::infinity();  // squared
    for (int64_t j = 0; j < count; ++j) {
      if (j != best) nearest_other = std::min(nearest_other, candidate_bounds_[j].lower);
    }
    if (!(best_upper < nearest_other)) return false;
    for (int64_t j = 0; j < count; ++j) keep_lower(i, candidates_[j], candidate_bounds_[j].lower);
    keep_lower(i, a, own.lower);
    labels[i] = best >= 0 ? candidates_[best] : a;
    upper_[i] = std::sqrt(best_upper);
    lower_[i] = std::min(ruled_out, std::sqrt(std::max(0.0, nearest_other)));
    return true;
  }

  // elkan_ <- a lower bound of ||x_i - c_cl|| from one of its square, `squared` (negative: 0), stored
  // with the centroid's movement so far (assign_bounded).
  void keep_lower(int64_t i, int64_t cl, double squared) {
    elkan_[i * opt_.k + cl] = std::sqrt(std::max(0.0, squared)) + moved_[cl];
  }

  // Bounds of ||a - b||^2: float32 arithmetic with its error bound; a float64 table takes the float64
  // distance for both, whose rounding kMargin covers.
  DistanceBounds distance_bounds(const scalar_t* a, const scalar_t* b) const {
    if constexpr (std::is_same_v<scalar_t, float>) {
      return squared_distance_bounds(a, b, d_);
    } else {
      const double exact = squared_distance(a, b, d_);
      return {exact, exact};
    }
  }

  // Squared norms of the centroids and the largest norm, for rank_rows' distances and error bound.
  void prepare_centroids(const at::Tensor& centroids) {
    c_norms_ = squared_norms(centroids.data_ptr<scalar_t>(), opt_.k, d_);
    max_c_norm_ = 0.0;
    for (double norm : c_norms_) max_c_norm_ = std::max(max_c_norm_, std::sqrt(norm));
  }

  // Labels (and fresh bounds) of n points `points` (nullptr: all, in order). Squared distances come
  // from their dot products with the centroids, ||x||^2 + ||c||^2 - 2 x.c; when the best and
  // second best are closer than twice its error bound, the centroids within reach are ranked again
  // by exact float64 distances, so a label is always the exact nearest centroid (ties: lowest index).
  void rank_rows(const int64_t* points, int64_t n, const at::Tensor& centroids, int64_t* labels) {
    const int64_t k = opt_.k;
    const scalar_t* c = centroids.data_ptr<scalar_t>();
    at::Tensor dots = scratch_dots_.view(-1).narrow(0, 0, k * n).view({k, n});
    point_dots(centroids, x_, points, n, dots);
    const scalar_t* dot = dots.data_ptr<scalar_t>();
    approx_.resize(k);
    int64_t rechecked = 0;
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = points != nullptr ? points[r] : r;
      const double err = product_error(x_norms_[i], max_c_norm_, max_c_norm_ * max_c_norm_);
      int64_t best = 0;
      for (int64_t cl = 0; cl < k; ++cl) {
        approx_[cl] = x_norms_[i] + c_norms_[cl] - 2.0 * static_cast<double>(dot[cl * n + r]);
        if (approx_[cl] < approx_[best]) best = cl;
      }
      double runner = std::numeric_limits<double>::infinity();
      for (int64_t cl = 0; cl < k; ++cl) runner = cl != best ? std::min(runner, approx_[cl]) : runner;
      double best_sq = approx_[best] + err, other_sq = runner - err;
      if (runner - approx_[best] <= 2.0 * err) {  // a near tie: exact distances decide
        ++rechecked;
        const double reach = approx_[best] + 2.0 * err;
        int64_t exact_best = -1;
        for (int64_t cl = 0; cl < k; ++cl) {
          if (approx_[cl] > reach) continue;
          approx_[cl] = squared_distance(data_ + i * d_, c + cl * d_, d_) + err;  // + err: undone below
          if (exact_best < 0 || approx_[cl] < approx_[exact_best]) exact_best = cl;
        }
        best = exact_best;
        best_sq = approx_[best] - err;
        other_sq = std::numeric_limits<double>::infinity();
        for (int64_t cl = 0; cl < k; ++cl) other_sq = cl != best ? std::min(other_sq, approx_[cl] - err) : other_sq;
      }
      labels[i] = best;
      upper_[i] = std::sqrt(std::max(0.0, best_sq));
      lower_[i] = std::sqrt(std::max(0.0, other_sq));  // k == 1: +inf, no other centroid
      // Per centroid: approx_ - err is at most the squared distance (for the rechecked ones, the
      // exact one); stored plus the centroids' movement so far (assign_bounded).
      for (int64_t cl = 0; cl < k; ++cl) keep_lower(i, cl, approx_[cl] - err);
    }
    WorkCounters& work = work_counters();
    work.distances_computed.fetch_add(n * k, std::memory_order_relaxed);
    work.exact_rechecks.fetch_add(rechecked, std::memory_order_relaxed);
  }

  // Error bound of a squared distance from a GEMM product of this table (row_products.h).
  double product_error(double aa, double b_norm, double bb) const {
    return cpu::product_error(dot_error_, aa, b_norm, bb);
  }

  double weight(double squared) const {
    return opt_.seeding == Seeding::kD ? std::sqrt(squared) : squared;
  }

  double draw(int64_t init, int64_t step, int64_t candidate) const {
    const int64_t counter = ((init * opt_.k + step) * 16) + candidate;
    return common::random_unit(opt_.seed, stream_, problem_, counter);
  }

  // k-means++ seeding (SPEC): greedy keeps the best of 2 + floor(ln k) D^2 candidates.
  //
  // A candidate q cannot bring point i closer than its current seed o(i) when, by the triangle
  // inequality, ||x_i - q|| >= ||q - c_o|| - ||x_i - c_o|| leaves it at least as far (after the
  // distances' error bound): such pairs skip the product, and the points some candidate may win
  // get the products of those candidates only (candidate_products). The trial distances of the
  // skipped pairs would have been >= the current ones, so every potential, and the chosen seeds, are
  // those of the full loop (which the plain_lloyd() switch runs).
  // Each point's nearest seed, that distance and a lower bound of its distance to every other seed
  // are kept for the first assignment (owner_, closest_, slack_, elkan_: assign_from_seeding).
  void seed_centroids(int64_t init, at::Tensor& centroids) {
    const int64_t k = opt_.k;
    scalar_t* c = centroids.data_ptr<scalar_t>();
    const int64_t first = std::min<int64_t>(M_ - 1, static_cast<int64_t>(draw(init, 0, 0) * M_));
    std::copy(data_ + first * d_, data_ + (first + 1) * d_, c);
    std::vector<double>& closest = closest_;
    std::vector<double>& slack = slack_;
    closest.resize(M_);
    slack.resize(M_);
    for (int64_t i = 0; i < M_; ++i) closest[i] = squared_distance(data_ + i * d_, c, d_);
    // slack_i bounds the error of a computed squared distance of point i to any point, twice over
    // (GEMM dot products: dot_error_ ||x_i|| ||x_j||; dot_product_error).
    double largest_norm = 0.0;
    for (double norm : x_norms_) largest_norm = std::max(largest_norm, std::sqrt(norm));
    for (int64_t i = 0; i < M_; ++i) slack[i] = 4.0 * dot_error_ * std::sqrt(x_norms_[i]) * largest_norm + 1e-300;
    std::vector<int64_t>& owner = owner_;  // the chosen seed nearest each point (as far as closest[] knows)
    owner.assign(M_, 0);
    // reach[i] = sqrt(closest[i] + slack[i]) >= the exact distance of point i to its seed (updated
    // with closest[i]: most points keep theirs from one step to the next).
    std::vector<double>& reach = reach_;
    reach.resize(M_);
    for (int64_t i = 0; i < M_; ++i) reach[i] = std::sqrt(closest[i] + slack[i]);

    const bool every_product = plain_lloyd().load(std::memory_order_relaxed);  // the test switch: no pruning
    const int64_t n_candidates =
        opt_.seeding == Seeding::kGreedy ? 2 + static_cast<int64_t>(std::log(static_cast<double>(k))) : 1;
    // Cumulative weights [M] of the points for the draws: summed here for the first step; afterwards
    // the winning candidate's running sums (candidate_potentials), the same sums in the same order.
    // to_seeds [k, n_candidates]: the distances of the step's candidates to the seeds, rounded down.
    std::vector<double> first_cumulative(M_), potentials(n_candidates), to_seeds(k * n_candidates);
    std::vector<double> running_sums(n_candidates * M_);
    double total = 0.0;
    for (int64_t i = 0; i < M_; ++i) first_cumulative[i] = (total += weight(closest[i]));
    const double* cumulative = first_cumulative.data();
    std::vector<int64_t> candidates(n_candidates), slot(M_);
    std::vector<uint32_t> wanted(M_);
    at::Tensor candidate_rows = at::empty({n_candidates, d_}, x_.options());
    at::Tensor candidate_dots = at::empty({n_candidates * M_}, x_.options());  // [n_candidates, n] per step
    at::Tensor seed_dots = at::empty({n_candidates * k}, x_.options());        // [n_candidates, step] per step
    std::vector<int64_t> seed_of(k);  // the point each seed is
    seed_of[0] = first;
    scalar_t* rows = candidate_rows.data_ptr<scalar_t>();
    for (int64_t step = 1; step < k; ++step) {
      const double running = cumulative[M_ - 1];
      for (int64_t j = 0; j < n_candidates; ++j) {
        candidates[j] = sample_index(cumulative, M_, draw(init, step, j) * running);
        std::copy(data_ + candidates[j] * d_, data_ + (candidates[j] + 1) * d_, rows + j * d_);
      }
      // Lower bounds of the candidates' distances to the seeds, from their products [C, step] less
      // their error bound (the seeds and candidates are points: their norms are known).
      at::Tensor products = seed_dots.narrow(0, 0, n_candidates * step).view({n_candidates, step});
      point_dots(candidate_rows, centroids, nullptr, step, products);
      const scalar_t* product = products.data_ptr<scalar_t>();
      for (int64_t j = 0; j < n_candidates; ++j) {
        const double qq = x_norms_[candidates[j]];
        for (int64_t t = 0; t < step; ++t) {
          const double ss = x_norms_[seed_of[t]];
          const double err = product_error(qq, std::sqrt(ss), ss);
          const double sq = qq + ss - 2.0 * static_cast<double>(product[j * step + t]) - err;
          to_seeds[t * n_candidates + j] = std::sqrt(std::max(0.0, sq)) * (1.0 - 1e-12);
        }
      }
      // The points some candidate may bring closer: wanted[i] holds bit j where candidate j may (the
      // plain loop: every bit). It cannot when ||q_j - c_o|| - reach[i] >= reach[i]: to_seeds is at
      // most the former, reach[i] at least ||x_i - c_o||, the factor covers the rounding of reach.
      for (int64_t i = 0; i < M_; ++i) {
        const double* from_seed = to_seeds.data() + owner[i] * n_candidates;
        const double twice = every_product ? kInfinity : 2.0 * (1.0 + 1e-14) * reach[i];
        uint32_t bits = 0;
        for (int64_t j = 0; j < n_candidates; ++j) bits |= static_cast<uint32_t>(from_seed[j] < twice) << j;
        wanted[i] = bits;
      }
      const int64_t n = candidate_products(candidate_rows, wanted.data(), slot.data(), candidate_dots);
      const scalar_t* dot = candidate_dots.data_ptr<scalar_t>();
      work_counters().seeding_full.fetch_add(M_ * n_candidates, std::memory_order_relaxed);
      const std::vector<double> cand_norms = squared_norms(rows, n_candidates, d_);
      candidate_potentials(n_candidates, closest.data(), slot.data(), x_norms_.data(), dot, n, cand_norms.data(), M_,
                           opt_.seeding == Seeding::kD, potentials.data(), running_sums.data());
      int64_t best = 0;
      for (int64_t j = 1; j < n_candidates; ++j) best = potentials[j] < potentials[best] ? j : best;
      cumulative = running_sums.data() + best * M_;  // read by the next step's draws, before its pass
      // The new seed's distances; for the first assignment (assign_from_seeding), each point's lower
      // bound of its distance to the new seed: from the product where it was taken, else by the
      // triangle inequality through its seed; and, where the new seed wins the point, to the seed it
      // leaves.
      for (int64_t i = 0; i < M_; ++i) {
        double nearest = closest[i];
        if (slot[i] >= 0 && (wanted[i] >> best & 1u)) {
          const double sq = std::max(0.0, x_norms_[i] - 2.0 * dot[best * n + slot[i]] + cand_norms[best]);
          nearest = std::min(closest[i], sq);
          keep_lower(i, step, sq - slack[i]);
        } else {  // no centroid has moved yet: the bound is stored as it is
          elkan_[i * k + step] = std::max(0.0, to_seeds[owner[i] * n_candidates + best] - reach[i]);
        }
        if (nearest < closest[i]) {
          keep_lower(i, owner[i], closest[i] - slack[i]);
          owner[i] = step;
          closest[i] = nearest;
          reach[i] = std::sqrt(nearest + slack[i]);
        }
      }
      std::copy(rows + best * d_, rows + (best + 1) * d_, c + step * d_);
      seed_of[step] = candidates[best];
    }
  }

  // The seeding's products of the candidates' rows [C, d] with the points some of them may bring
  // closer (wanted[i], bit j: candidate j may): dots [C, n] (returns n), point i in column slot[i]
  // (-1: wanted by none). In float32 the points go in classes of one set of candidates, and only the
  // wanted pairs are multiplied: an unwanted entry is -inf (a trial distance of +inf: the point's seed
  // stays nearer, as the bound already proved). Float64 tables (BLAS) and over kClassCandidates
  // candidates take every candidate's product with every wanted point.
  int64_t candidate_products(const at::Tensor& candidate_rows, const uint32_t* wanted, int64_t* slot,
                             at::Tensor& dots) {
    const int64_t C = candidate_rows.size(0);
    need_.clear();
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (C <= kClassCandidates) {
        int64_t first[(1 << kClassCandidates) + 1] = {};  // class m: columns first[m] .. first[m + 1] - 1
        for (int64_t i = 0; i < M_; ++i) first[wanted[i] + 1] += wanted[i] != 0;
        for (int64_t m = 1; m <= (1 << C); ++m) first[m] += first[m - 1];
        const int64_t n = first[1 << C];
        need_.resize(n);
        int64_t next[1 << kClassCandidates];
        std::copy(first, first + (1 << C), next);
        for (int64_t i = 0; i < M_; ++i) {
          slot[i] = wanted[i] != 0 ? next[wanted[i]]++ : -1;
          if (wanted[i] != 0) need_[slot[i]] = i;
        }
        class_rows_.resize(C * d_);
        class_dots_.resize(C * n);
        const float* rows = candidate_rows.data_ptr<float>();
        float* out = dots.data_ptr<float>();
        int64_t products = 0;
        for (uint32_t m = 1; m < (1u << C); ++m) {
          const int64_t count = first[m + 1] - first[m];
          if (count == 0) continue;
          int64_t r = 0;  // the class's candidates, in order
          for (int64_t j = 0; j < C; ++j) {
            if (m >> j & 1u) std::copy(rows + j * d_, rows + (j + 1) * d_, class_rows_.data() + r++ * d_);
          }
          row_dots(class_rows_.data(), r, data_, need_.data() + first[m], count, d_, class_dots_.data());
          products += r * count;
          for (int64_t j = 0, q = 0; j < C; ++j) {
            float* column = out + j * n + first[m];
            if (m >> j & 1u) {
              std::copy(class_dots_.data() + q * count, class_dots_.data() + (q + 1) * count, column);
              ++q;
            } else {
              std::fill(column, column + count, -std::numeric_limits<float>::infinity());
            }
          }
        }
        work_counters().seeding_computed.fetch_add(products, std::memory_order_relaxed);
        return n;
      }
    }
    for (int64_t i = 0; i < M_; ++i) {
      slot[i] = wanted[i] != 0 ? static_cast<int64_t>(need_.size()) : -1;
      if (wanted[i] != 0) need_.push_back(i);
    }
    const int64_t n = static_cast<int64_t>(need_.size());
    at::Tensor products = dots.narrow(0, 0, C * n).view({C, n});
    point_dots(candidate_rows, x_, need_.data(), n, products);
    work_counters().seeding_computed.fetch_add(n * C, std::memory_order_relaxed);
    return n;
  }

  const at::Tensor& x_;
  const KmeansOptions& opt_;
  common::RandomStream stream_;
  int64_t problem_, M_, d_;
  const scalar_t* data_;
  std::vector<double> x_norms_;
  double threshold_;   // early stop when the centroid shift falls under it
  double dot_error_;   // relative error bound of a GEMM dot product (dot_product_error)
  // Per run: Hamerly bounds [M], Elkan bounds [M, k], centroid moves (last, cumulative) / norms / half
  // gaps [k], half distances between centroids [k, k], sums [k, d], counts [k].
  std::vector<double> upper_, lower_, elkan_, drift_, moved_, c_norms_, half_gap_, half_between_, approx_;
  AlignedVector<double> sums_;  // add_row's vector loads and stores of a row of sums stay in one cache line
  // The seeding's nearest seed of every point, its squared distance, that distance's error bound and
  // the root of their sum [M].
  std::vector<int64_t> owner_;
  std::vector<double> closest_, slack_, reach_;
  std::vector<int64_t> counts_, need_, candidates_;  // candidates_: the centroids a point may be nearer to
  std::vector<DistanceBounds> candidate_bounds_;
  std::vector<double> other_distance_;  // [M] each point's distance to its nearest other centroid
  // Per run: each centroid's version (its changes so far) [k]; each point's bounds of its distance to
  // its own centroid [M], with that centroid and its version then, and each pair's versions at its
  // half distance: while they hold, distance_bounds would give the same bits again.
  std::vector<int64_t> version_, own_version_, own_label_;
  std::vector<DistanceBounds> own_;
  std::vector<std::pair<int64_t, int64_t>> half_versions_;  // [k, k]: the pair's versions at its half distance
  // The seeding's candidate rows of one class [<= C, d] and their products [<= C, n] (float32 only).
  std::vector<float> class_rows_, class_dots_;
  double max_c_norm_ = 0.0;
  at::Tensor scratch_dots_;  // [k, M] dot products
};

}  // namespace

void point_dots(const at::Tensor& rows, const at::Tensor& x, const int64_t* points, int64_t n, at::Tensor& dots) {
  if (n <= 0) return;
  if (x.scalar_type() == at::kFloat) {
    row_dots(rows.data_ptr<float>(), rows.size(0), x.data_ptr<float>(), points, n, x.size(1), dots.data_ptr<float>());
    return;
  }
  const at::NoGradGuard no_grad;  // inputs that require grad (the inter-cluster distance's) and an out= product
  const at::Tensor picked = points != nullptr
                                ? at::index_select(x, 0, at::from_blob(const_cast<int64_t*>(points), {n}, at::kLong))
                                : x.narrow(0, 0, n);
  at::mm_out(dots, rows, picked.t());  // [r, n]: MKL is faster writing this skinny product transposed
}

double kmeans_problem(const at::Tensor& x, const KmeansOptions& options,
                      common::RandomStream stream, int64_t problem, at::Tensor& centroids,
                      int64_t* labels, bool want_inertia, const double* norms, NearestOthers* others) {
  double best_inertia = 0.0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::kmeans", [&] {
    KmeansSolver<scalar_t> solver(x, options, stream, problem, norms);
    const int64_t M = x.size(0);
    double other_total = 0.0;
    if (options.n_init == 1) {
      best_inertia = solver.run(0, centroids, labels, want_inertia, others != nullptr ? others->index : nullptr,
                                &other_total);
    } else {
      at::Tensor trial_centroids = at::empty_like(centroids);
      std::vector<int64_t> trial_labels(M), trial_others(others != nullptr ? M : 0);
      for (int64_t init = 0; init < options.n_init; ++init) {
        double trial_total = 0.0;
        const double inertia = solver.run(init, trial_centroids, trial_labels.data(), true,  // picks the run
                                          others != nullptr ? trial_others.data() : nullptr, &trial_total);
        if (init == 0 || inertia < best_inertia) {  // ties: the earlier run
          best_inertia = inertia;
          centroids.copy_(trial_centroids);
          std::copy(trial_labels.begin(), trial_labels.end(), labels);
          if (others != nullptr) std::copy(trial_others.begin(), trial_others.end(), others->index);
          other_total = trial_total;
        }
      }
    }
    if (others != nullptr) others->mean = other_total / static_cast<double>(M);
  });
  return best_inertia;
}

void cluster_means(const at::Tensor& x, const int64_t* labels, int64_t k, at::Tensor& centroids,
                   std::vector<int64_t>& counts) {
  const int64_t M = x.size(0), d = x.size(1);
  counts.assign(k, 0);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sdd::cluster_means", [&] {
    std::vector<double> sums(k * d, 0.0);
    const scalar_t* data = x.data_ptr<scalar_t>();
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < d; ++j) sums[labels[i] * d + j] += data[i * d + j];
      ++counts[labels[i]];
    }
    scalar_t* c = centroids.data_ptr<scalar_t>();
    for (int64_t cl = 0; cl < k; ++cl) {
      for (int64_t j = 0; j < d; ++j) {
        c[cl * d + j] = counts[cl] > 0 ? static_cast<scalar_t>(sums[cl * d + j] / counts[cl]) : scalar_t(0);
      }
    }
  });
}

// ---- the op ------------------------------------------------------------------------------
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> kmeans_cpu(const at::Tensor& x, int64_t k,
                                                          int64_t iters, double tol, int64_t n_init,
                                                          c10::string_view seeding, int64_t seed) {
  const KmeansOptions options = check_kmeans_inputs(x, k, iters, tol, n_init, std::string(seeding), seed);
  const int64_t P = x.size(0), M = x.size(1), d = x.size(2);
  const at::Tensor xc = compute_copy(x);
  at::Tensor centroids = at::empty({P, k, d}, xc.options());
  at::Tensor labels = at::empty({P, M}, xc.options().dtype(at::kLong));
  int64_t* label_data = labels.data_ptr<int64_t>();
  std::vector<double> inertias(P);
  parallel_tasks(P, [&](int64_t p) {
    at::Tensor c = centroids.select(0, p);
    inertias[p] = kmeans_problem(xc.select(0, p), options, common::RandomStream::kKmeansSeeding, p, c,
                                 label_data + p * M);
  });
  return {centroids, labels, tensor_from(inertias, xc.options())};
}

}  // namespace

TORCH_LIBRARY_IMPL(sdd, CPU, m) { m.impl("kmeans", &kmeans_cpu); }

}  // namespace cpu
}  // namespace sdd
