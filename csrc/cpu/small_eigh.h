// Spectra of many small matrices whose rows are scattered through one table.
//
// Matrix i is the rows index[offsets[i] .. offsets[i + 1]) of table [T, d] (optionally minus their
// float64 mean): a cluster's points, or one patch of every image. Its spectrum is the eigenvalues
// of the smaller Gram, A A^T [r, r] (r <= d) or A^T A [d, d], in float64 whatever the table's
// dtype (an fp32 Gram carries eigenvalue noise of ~1e-7 of the largest, so singular values under
// ~3e-4 of the largest would be lost; real clusters have such directions).
//
// Matrices are grouped by Gram side and cut into chunks of up to kChunkMatrices (eigenvalues of
// Grams: what one QR takes, eigenvalue_matrices_per_solve), in order of decreasing rows, each padded
// to its largest member (zero rows add only zero eigenvalues, and the solver leaves them out
// exactly; for eigenvalues only, each group of the solver's lanes is reduced at its own largest
// member's size, or one matrix at a time where its sizes differ widely, and each Gram formed over
// its own rows); a chunk is one task of a single parallel region (parallel_tasks.h), run on the
// task's thread: gather + centre into a per-thread float64 buffer,
// then the lane-parallel solver, which forms the Grams itself (symmetric_eigenvalues.h): the
// eigenvalues, or, where the backward needs them, the eigenvectors too. Chunks of large matrices,
// or too few to fill the solver's lanes, take LAPACK eigh per matrix instead for eigenvectors (it
// is faster there). The backward's products run on chunks of one padded size. No [T, d] float64
// copy is made; per-thread buffers are kept between calls (no page faults per call). The chunking
// is fixed, so results do not depend on the thread count or on which thread ran which chunk.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace sdd {
namespace cpu {

struct RowMatrices {
  at::Tensor table;               // [T, d] float or double, contiguous
  std::vector<int64_t> index;     // rows of every matrix, matrix after matrix
  std::vector<int64_t> offsets;   // [count + 1]: matrix i is index[offsets[i] .. offsets[i + 1])
  bool centered = false;          // subtract each matrix's row mean before the Gram

  int64_t count() const { return static_cast<int64_t>(offsets.size()) - 1; }
  int64_t rows(int64_t i) const { return offsets[i + 1] - offsets[i]; }
  // Appends a matrix made of `rows` (table row indices).
  void add(const int64_t* rows, int64_t n);
};

// Eigen-decompositions a forward keeps for its backward (the backward then skips the Grams and
// the eigensolver). Matrix i (RowMatrices order): data[offsets[i] ..] holds its eigenvectors
// [m, m] (row-major, eigenvector j in column j), then its m eigenvalues (ascending), m its smaller
// side (min(rows, d)).
struct KeptSpectra {
  at::Tensor data;               // float64 [total]
  std::vector<int64_t> offsets;  // [count]
};

// consume(i, eigenvalues, m): the m eigenvalues (ascending) of matrix i, m >= its smaller side
// (without `keep` it is zero-padded to its chunk's size: the padding adds zeros at the front); NaN
// for a matrix with a non-finite entry. Called from the worker threads, once per matrix: it must
// only write matrix i's own outputs.
using SpectrumFn = std::function<void(int64_t i, const double* eigenvalues, int64_t m)>;
// With `keep`, the decompositions the backward needs are kept in *keep too (and m is the smaller
// side). The lane solver's eigenvalues are the same bits with or without eigenvectors, except in a
// group of widely differing sizes, which without them is reduced one matrix at a time
// (symmetric_eigenvalues.h); those, and LAPACK's (large matrices, with `keep`), agree with them to
// rounding (backward stable all).
void for_each_spectrum(const RowMatrices& mats, const SpectrumFn& consume, KeptSpectra* keep = nullptr);

// One set of matrices, its consumer, and where its decompositions are kept (null: eigenvalues only).
// The job may own its matrices (and the consumer what it captures).
struct SpectrumJob {
  std::shared_ptr<const RowMatrices> mats;
  SpectrumFn consume;
  KeptSpectra* keep = nullptr;
};
// Every job's chunks in one parallel region, the costliest first across the jobs (one join instead
// of one per job: under load from another process, a join waits for a preempted thread); each job
// as for_each_spectrum above, the same bits. `side`, when given: side(t) for t < side_tasks in the
// same region, before the chunks (the caller's independent work, which then opens no region).
void for_each_spectrum(const std::vector<SpectrumJob>& jobs, int64_t side_tasks = 0,
                       const std::function<void(int64_t)>& side = nullptr);

// Per matrix i: the weights (one per eigenvalue; m = its smaller side) and scale of a spectral
// function whose derivative per singular value is w_j * sigma_j. Called from the worker threads.
using SpectralWeightFn = std::function<void(int64_t i, const double* eigenvalues, int64_t m, double* weights,
                                            double& scale)>;

// grad_table[index rows of i] += scale_i * (U diag(w_i) U^T A_i or A_i V diag(w_i) V^T), through
// the centering when mats.centered. grad_table [T, d] like mats.table; matrices must not share rows.
// With `kept` (from for_each_spectrum on the same matrices), no Gram and no eigensolver are run;
// without, they are solved as a keeping forward solves them (the same bits).
void add_spectral_gradients(const RowMatrices& mats, const SpectralWeightFn& weight_fn, at::Tensor& grad_table,
                            const KeptSpectra* kept = nullptr);

}  // namespace cpu
}  // namespace sdd
