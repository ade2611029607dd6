// Symmetric eigen-decomposition of one m x m fp64 matrix by one block: parallel cyclic Jacobi
// (Brent-Luk round-robin ordering: m/2 disjoint rotations per step, m-1 steps per sweep).
// A pair (p, q) is rotated only while |a_pq| exceeds kJacobiRelative * sqrt(|a_pp a_qq|) (the
// threshold of Demmel & Veselic, so small eigenvalues keep their relative accuracy) and an
// absolute floor of kJacobiFloor * trace; the sweeps stop after one that rotated nothing (or
// after kMaxSweeps). The matrix and the optional eigenvector matrix live in global or shared
// memory.
#pragma once

#include <cmath>
#include <cstdint>

#include "block.h"

namespace sdd {
namespace kernels {

constexpr int kMaxSweeps = 30;
constexpr double kJacobiRelative = 1e-14;  // rotate while |a_pq| > this * sqrt(|a_pp a_qq|) ...
constexpr double kJacobiFloor = 1e-16;     // ... and > this * trace (rounding noise of the Gram)

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

// Diagonalises a (m x m, symmetric positive semi-definite, row-major) in place: eigenvalues
// on its diagonal, in no particular order. With v != nullptr, v (m x m) receives the
// eigenvectors as columns. Starts and ends with a sync. Indices are 32-bit (m <= 46340): the
// passes run once per element per step, and 64-bit division is slow on a GPU.
template <class Block>
SDD_KERNEL void jacobi_eigen(Block& b, double* a, double* v, int64_t m64, const JacobiScratch& js, double* scratch) {
  const int m = static_cast<int>(m64), mm = m * m;
  if (v != nullptr) {
    for (int e = b.thread(); e < mm; e += b.threads()) v[e] = (e / m == e % m) ? 1.0 : 0.0;
  }
  double diagonal = 0.0;
  for (int i = b.thread(); i < m; i += b.threads()) diagonal += fabs(a[i * m + i]);
  const double floor = kJacobiFloor * block_sum(b, diagonal, scratch);  // block_sum syncs
  if (m < 2) return;
  const int even = m + (m & 1), pairs = even / 2, span = pairs * m;
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    double rotated = 0.0;
    for (int round = 0; round < even - 1; ++round) {
      for (int i = b.thread(); i < pairs; i += b.threads()) {
        int p = round_robin(i, round, even), q = round_robin(even - 1 - i, round, even);
        if (p > q) { const int t = p; p = q; q = t; }
        js.p[i] = p;
        js.q[i] = q;
        js.cos[i] = 1.0;
        js.sin[i] = 0.0;
        if (q < m) {  // q == m: the dummy slot of an odd m
          const double app = a[p * m + p], aqq = a[q * m + q], apq = a[p * m + q];
          if (fabs(apq) > kJacobiRelative * sqrt(fabs(app * aqq)) && fabs(apq) > floor) {  // NaN: no
            jacobi_rotation(app, aqq, apq, &js.cos[i], &js.sin[i]);
            rotated += 1.0;
          }
        }
      }
      b.sync();
      for (int e = b.thread(); e < span; e += b.threads()) {  // rows p, q: J^T A
        const int i = e / m, j = e - i * m;
        if (js.sin[i] == 0.0) continue;
        const int p = js.p[i], q = js.q[i];
        const double c = js.cos[i], s = js.sin[i], ap = a[p * m + j], aq = a[q * m + j];
        a[p * m + j] = c * ap - s * aq;
        a[q * m + j] = s * ap + c * aq;
      }
      b.sync();
      for (int e = b.thread(); e < span; e += b.threads()) {  // columns p, q: (J^T A) J, V J
        const int i = e / m, j = e - i * m;
        if (js.sin[i] == 0.0) continue;
        const int p = js.p[i], q = js.q[i];
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
    if (block_sum(b, rotated, scratch) == 0.0) break;  // the same decision on every thread
  }
}

}  // namespace kernels
}  // namespace sdd
