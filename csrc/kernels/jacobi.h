// Symmetric eigen-decomposition of one m x m fp64 matrix by one block: parallel cyclic Jacobi
// (Brent-Luk round-robin ordering: m/2 disjoint rotations per round, m-1 rounds per sweep).
// A pair (p, q) is rotated only while |a_pq| exceeds kJacobiRelative * sqrt(|a_pp a_qq|) (the
// threshold of Demmel & Veselic) and an absolute floor of kJacobiFloor * trace; the sweeps stop
// after one that rotated nothing (or after kMaxSweeps).
//
// A round computes J^T A J in one pass into a second buffer: element (a, b) is a combination of
// A[a][b], A[a][b'], A[a'][b] and A[a'][b'] (a', b' the partners of a and b), all in rows a and
// a', so consecutive threads read consecutive addresses; a column update (A J, in place) would
// stride by m. The eigenvectors are kept as rows (V^T <- J^T V^T), updated row-wise in place.
#pragma once

#include <cmath>
#include <cstdint>

#include "block.h"

namespace sdd {
namespace kernels {

constexpr int kMaxSweeps = 30;
constexpr double kJacobiRelative = 1e-14;  // rotate while |a_pq| > this * sqrt(|a_pp a_qq|) ...
constexpr double kJacobiFloor = 1e-16;     // ... and > this * trace (rounding noise of the Gram)

// Shared memory of jacobi_eigen's rotation table for matrices up to m_max.
inline int64_t jacobi_shared_bytes(int64_t m_max) {
  return 2 * shared_size<double>(m_max + 1) + shared_size<int>(m_max + 1);
}

// The rotations of one round, per index a: partner[a] (a itself when unpaired),
// alpha[a] = J[a][a] and beta[a] = J[partner][a] (0 when a is not rotated).
struct JacobiScratch {
  double* alpha;
  double* beta;
  int* partner;

  SDD_KERNEL static JacobiScratch take(SharedCursor& shared, int64_t m_max) {
    return JacobiScratch{shared.take<double>(m_max + 1), shared.take<double>(m_max + 1), shared.take<int>(m_max + 1)};
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

// Diagonalises a (m x m, symmetric positive semi-definite, row-major) using `spare` (m x m) as
// the second buffer; returns the buffer (a or spare) whose diagonal holds the eigenvalues, in no
// particular order. With vt != nullptr, row l of vt (m x m) receives the eigenvector of
// eigenvalue l. Starts and ends with a sync. Indices are 32-bit (m <= 46340): 64-bit division is
// slow on a GPU.
template <class Block>
SDD_KERNEL double* jacobi_eigen(Block& b, double* a, double* spare, double* vt, int64_t m64, const JacobiScratch& js,
                                double* scratch) {
  const int m = static_cast<int>(m64), mm = m * m;
  if (vt != nullptr) {
    for (int e = b.thread(); e < mm; e += b.threads()) vt[e] = (e / m == e % m) ? 1.0 : 0.0;
  }
  double diagonal = 0.0;
  for (int i = b.thread(); i < m; i += b.threads()) diagonal += fabs(a[i * m + i]);
  const double floor = kJacobiFloor * block_sum(b, diagonal, scratch);  // block_sum syncs
  if (m < 2) return a;
  const int even = m + (m & 1), pairs = even / 2;
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    double rotated = 0.0;
    for (int round = 0; round < even - 1; ++round) {
      for (int i = b.thread(); i < pairs; i += b.threads()) {
        int p = round_robin(i, round, even), q = round_robin(even - 1 - i, round, even);
        if (p > q) { const int t = p; p = q; q = t; }
        if (q >= m) {  // q is the dummy slot of an odd m: p sits this round out
          js.partner[p] = p;
          js.alpha[p] = 1.0;
          js.beta[p] = 0.0;
          continue;
        }
        const double app = a[p * m + p], aqq = a[q * m + q], apq = 0.5 * (a[p * m + q] + a[q * m + p]);
        double c = 1.0, s = 0.0;
        if (fabs(apq) > kJacobiRelative * sqrt(fabs(app * aqq)) && fabs(apq) > floor) {  // NaN: no
          jacobi_rotation(app, aqq, apq, &c, &s);
          rotated += 1.0;
        }
        js.partner[p] = q;
        js.partner[q] = p;
        js.alpha[p] = c;
        js.beta[p] = -s;  // J[q][p]
        js.alpha[q] = c;
        js.beta[q] = s;   // J[p][q]
      }
      b.sync();
      for (int e = b.thread(); e < mm; e += b.threads()) {
        const int r = e / m, c = e - r * m, rp = js.partner[r], cp = js.partner[c];
        const double ar = js.alpha[r], br = js.beta[r], ac = js.alpha[c], bc = js.beta[c];
        spare[e] = ar * (ac * a[r * m + c] + bc * a[r * m + cp]) + br * (ac * a[rp * m + c] + bc * a[rp * m + cp]);
        if (vt != nullptr && r < rp) {  // rows r and rp of V^T, by the thread of the smaller one
          const double vr = vt[r * m + c], vp = vt[rp * m + c];
          vt[r * m + c] = ar * vr + br * vp;
          vt[rp * m + c] = js.alpha[rp] * vp + js.beta[rp] * vr;
        }
      }
      b.sync();
      double* t = a;  // the same swap on every thread
      a = spare;
      spare = t;
    }
    if (block_sum(b, rotated, scratch) == 0.0) break;  // the same decision on every thread
  }
  return a;
}

}  // namespace kernels
}  // namespace sdd
