// Symmetric eigen-decomposition of one m x m fp64 matrix by one block: parallel cyclic Jacobi
// (Brent-Luk round-robin ordering: m/2 disjoint rotations per step, m-1 steps per sweep),
// sweeps until the off-diagonal mass is under 1e-15 of the diagonal's (relative), at most
// kMaxSweeps. The matrix and the optional eigenvector matrix live in global or shared memory.
#pragma once

#include <cmath>
#include <cstdint>

#include "block.h"

namespace sdd {
namespace kernels {

constexpr int kMaxSweeps = 30;
constexpr double kJacobiTolerance = 1e-30;  // off^2 <= tolerance * diag^2 (1e-15 in norm)

// Shared memory of jacobi_eigen for matrices up to m_max.
inline int64_t jacobi_shared_bytes(int64_t m_max) {
  const int64_t pairs = (m_max + 1) / 2;
  return 2 * shared_size<double>(pairs) + 2 * shared_size<int>(pairs);
}

struct JacobiScratch {
  double* cos;  // [pairs]
  double* sin;  // [pairs]
  int* p;       // [pairs]
  int* q;       // [pairs]

  SDD_KERNEL static JacobiScratch take(SharedCursor& shared, int64_t m_max) {
    const int64_t pairs = (m_max + 1) / 2;
    return JacobiScratch{shared.take<double>(pairs), shared.take<double>(pairs), shared.take<int>(pairs),
                         shared.take<int>(pairs)};
  }
};

// Rotation (c, s) that zeroes a_pq of [[a_pp, a_pq], [a_pq, a_qq]] under J^T A J with
// J = [[c, s], [-s, c]] (Golub & Van Loan, symmetric Schur decomposition).
SDD_KERNEL void jacobi_rotation(double app, double aqq, double apq, double* c, double* s) {
  if (apq == 0.0) {
    *c = 1.0;
    *s = 0.0;
    return;
  }
  const double tau = (aqq - app) / (2.0 * apq);
  const double t = fabs(tau) > 1e150 ? 0.5 / tau : (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
  *c = 1.0 / sqrt(1.0 + t * t);
  *s = t * *c;
}

// Index at position `pos` of round `round` of the round-robin tournament over `even` slots
// (slot 0 stays, the others rotate).
SDD_KERNEL int round_robin(int pos, int round, int even) {
  return pos == 0 ? 0 : 1 + (pos - 1 + round) % (even - 1);
}

// Diagonalises a (m x m, symmetric, row-major) in place: eigenvalues on its diagonal, in no
// particular order. With v != nullptr, v (m x m) receives the eigenvectors as columns.
// Starts and ends with a sync.
template <class Block>
SDD_KERNEL void jacobi_eigen(Block& b, double* a, double* v, int64_t m, const JacobiScratch& js, double* scratch) {
  if (v != nullptr) {
    for (int64_t e = b.thread(); e < m * m; e += b.threads()) v[e] = (e / m == e % m) ? 1.0 : 0.0;
  }
  b.sync();
  if (m < 2) return;
  const int even = static_cast<int>(m + (m & 1)), pairs = even / 2;
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (int64_t e = b.thread(); e < m * m; e += b.threads()) {
      const double x2 = a[e] * a[e];
      if (e / m == e % m) diag += x2; else off += x2;
    }
    off = block_sum(b, off, scratch);
    diag = block_sum(b, diag, scratch);
    if (!(off > kJacobiTolerance * diag)) break;  // converged, all zero, or not finite
    for (int round = 0; round < even - 1; ++round) {
      for (int i = b.thread(); i < pairs; i += b.threads()) {
        int p = round_robin(i, round, even), q = round_robin(even - 1 - i, round, even);
        if (p > q) { const int t = p; p = q; q = t; }
        js.p[i] = p;
        js.q[i] = q;
        if (q >= m) {  // the dummy slot of an odd m
          js.cos[i] = 1.0;
          js.sin[i] = 0.0;
        } else {
          jacobi_rotation(a[p * m + p], a[q * m + q], a[p * m + q], &js.cos[i], &js.sin[i]);
        }
      }
      b.sync();
      for (int64_t e = b.thread(); e < pairs * m; e += b.threads()) {  // rows p, q: J^T A
        const int i = static_cast<int>(e / m);
        const int64_t j = e % m;
        const int p = js.p[i], q = js.q[i];
        if (q >= m || js.sin[i] == 0.0) continue;
        const double c = js.cos[i], s = js.sin[i], ap = a[p * m + j], aq = a[q * m + j];
        a[p * m + j] = c * ap - s * aq;
        a[q * m + j] = s * ap + c * aq;
      }
      b.sync();
      for (int64_t e = b.thread(); e < pairs * m; e += b.threads()) {  // columns p, q: (J^T A) J, V J
        const int i = static_cast<int>(e / m);
        const int64_t j = e % m;
        const int p = js.p[i], q = js.q[i];
        if (q >= m || js.sin[i] == 0.0) continue;
        const double c = js.cos[i], s = js.sin[i], ap = a[j * m + p], aq = a[j * m + q];
        a[j * m + p] = c * ap - s * aq;
        a[j * m + q] = s * ap + c * aq;
        if (v != nullptr) {
          const double vp = v[j * m + p], vq = v[j * m + q];
          v[j * m + p] = c * vp - s * vq;
          v[j * m + q] = s * vp + c * vq;
        }
      }
      b.sync();
    }
  }
}

}  // namespace kernels
}  // namespace sdd
