// Eigenvalues of many small symmetric float64 matrices, several at once in SIMD lanes.
//
// LAPACK's eigvalsh (Householder tridiagonalisation, then a root-free QL) runs one matrix at a
// time; at m ~ 64 it is latency-bound (a chain of divisions per rotation) and level-2 BLAS-bound.
// Here W matrices (8 under AVX-512, 4 under AVX2, 2 otherwise; one copy of the kernel per
// instruction set, picked at load time) go through the same steps together, one matrix per vector
// lane: Householder reduction to tridiagonal form, then implicit symmetric QR with Wilkinson shifts
// (for eigenvalues in the root-free form of Pal, Walker and Kahan, as LAPACK's dsterf; with
// eigenvectors as rotations), each lane deflating on its own, four groups' sweeps interleaved (two
// with eigenvectors or with 2 lanes). Matrices of different sizes share a group zero-padded.
// Backward stable like LAPACK's: every eigenvalue is within a small multiple of m eps ||A|| of the
// exact one (python_tests/test_symmetric_eigenvalues.py, against torch.linalg.eigvalsh).
// Deterministic on a machine; the AVX2 / AVX-512 copies use fused multiply-adds, so the last bits
// can differ between machine kinds. A lane's results do not depend on the other lanes (nor on how
// many groups share a QR).
#pragma once

#include <cstdint>
#include <functional>

namespace sdd {
namespace cpu {

// values [count, m] <- the eigenvalues, ascending, of matrices [count, m, m] (row-major, only the
// lower triangle is read). A matrix with a non-finite entry, or one whose QR iteration does not
// converge, gets NaN eigenvalues. Single-threaded; call it from a task.
void symmetric_eigenvalues(const double* matrices, int64_t count, int64_t m, double* values);

// values [count, rows] <- the eigenvalues, ascending, of the Grams X X^T of matrices [count, rows,
// d] (row-major; rows % 4 == 0, zero rows allowed). The Grams are formed in the solver's own
// layout, lower triangle only: half the flops of a full Gram and no [count, rows, rows] buffer.
// sizes (may be null): matrix j's rows from sizes[j] on are zero; its Gram is then formed over its
// first sizes[j] rows rounded up to 4, and each group of W matrices reduced at its largest such
// size: less work when the sizes differ, the same eigenvalues to rounding (a matrix that reaches
// its group's size has the reduction's last rows summed in another order). A group whose sizes
// differ widely (W size^3 over 1.5x its members' own cubes, size >= 96) is reduced one matrix at a
// time instead, vectorised along the rows (tridiagonalize_rows.inc): its eigenvalues agree with
// the lanes' to rounding, not bit for bit.
void gram_eigenvalues(const double* matrices, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
                      double* values);

// Eigen-decompositions: the eigenvalues by the lane steps (the same bits as above without sizes),
// then the QR again with its rotations applied to an identity, shifted by those eigenvalues (about
// one sweep per eigenvalue instead of ~1.7: 40% fewer rotations on the headline call's matrices), then the
// Householder back-transformation. outputs[j] <- matrix j's eigenvectors [n, n] (row-major, column c
// that of eigenvalue c), then its n eigenvalues (ascending), n = sizes[j] (m when sizes is null):
// the decomposition of the leading n x n block of a matrix that is zero outside it (zero-padded
// rows / columns; checked, exactly, on the tridiagonal form). NaN for a matrix with a non-finite
// entry or one that does not converge.
void symmetric_eigh(const double* matrices, int64_t count, int64_t m, const int64_t* sizes, double* const* outputs);

// The same for the Grams X X^T of matrices [count, rows, d] (rows % 4 == 0; rows of matrix j from
// sizes[j] on must be zero).
void gram_eigh(const double* matrices, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
               double* const* outputs);

// Rows a Gram solve forms a matrix of n rows over: n rounded up to the lane Gram's 4 x 4 tiles (the
// rows of gram_eigenvalues / gram_eigh matrices are a multiple of this; rows past n must be zero).
constexpr int64_t kGramRowMultiple = 4;
inline int64_t gram_rows(int64_t n) { return (n + kGramRowMultiple - 1) / kGramRowMultiple * kGramRowMultiple; }

// Matrix j [rows, d] of a Gram solve: a pointer to its rows, or to `buffer` [rows, d] after filling
// it (then each matrix is formed just before its Gram, while it is in cache).
using GramSource = std::function<const double*(int64_t j, double* buffer)>;
void gram_eigenvalues(const GramSource& source, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
                      double* values);
void gram_eigh(const GramSource& source, int64_t count, int64_t rows, int64_t d, const int64_t* sizes,
               double* const* outputs);

// W of the kernel in use: 8, 4 or 2 (at most SDD_CPU_LANES when set, for tests).
int eigensolver_lanes();

// Matrices the eigenvalues-only solver takes through one QR, the groups of W whose sweeps run
// interleaved: 32, 16 or 4 (four groups, two of 2 lanes). Fewer in a call leave lanes idle.
int eigenvalue_matrices_per_solve();

}  // namespace cpu
}  // namespace sdd
