#include "small_eigh.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>

#include "parallel_tasks.h"
#include "symmetric_eigenvalues.h"

namespace sdd {
namespace cpu {
namespace {

constexpr int64_t kPadMultiple = 4;          // bucket granularity of row counts: LAPACK cost grows as size^3
constexpr int64_t kChunkMatrices = 16;       // matrices per task at most ...
constexpr int64_t kChunkDoubles = 1 << 19;   // ... and their padded rows at most 4 MiB of float64

struct Chunk {
  bool gram;                    // A A^T (rows <= d) or A^T A
  int64_t padded;               // rows of every matrix, zero-padded
  std::vector<int64_t> members; // matrix indices

  int64_t gram_size(int64_t d) const { return gram ? padded : d; }  // m: the Grams are [m, m]
};

int64_t padded_rows(int64_t rows) { return (rows + kPadMultiple - 1) / kPadMultiple * kPadMultiple; }

// rows [n, d] (float64) minus their mean row.
void subtract_row_mean(double* rows, int64_t n, int64_t d) {
  std::vector<double> mean(d, 0.0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < d; ++c) mean[c] += rows[r * d + c];
  }
  for (int64_t c = 0; c < d; ++c) mean[c] /= static_cast<double>(n);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < d; ++c) rows[r * d + c] -= mean[c];
  }
}

// Fixed chunks, larger matrices first (the costly tasks start early, which evens out the threads'
// finishing times); a function of the matrices only, so a forward and a backward cut the same.
// `by_size`: buckets of one padded row count, members in index order: what the eigenvectors need
// (a LAPACK eigh costs m^3 of the padded size; kept spectra are laid out by these chunks).
// Otherwise matrices of one Gram side in order of decreasing rows (ties by index), cut into runs
// padded to their first (largest) member: the lane-parallel eigenvalue solver then finds full
// groups even when few matrices share a size.
std::vector<Chunk> make_chunks(const RowMatrices& mats, bool by_size) {
  const int64_t d = mats.table.size(1);
  auto capacity = [&](int64_t padded) {
    return std::clamp<int64_t>(kChunkDoubles / std::max<int64_t>(1, padded * d), 1, kChunkMatrices);
  };
  std::vector<int64_t> order(mats.count());
  for (int64_t i = 0; i < mats.count(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    const bool gx = mats.rows(x) <= d, gy = mats.rows(y) <= d;
    if (gx != gy) return gx < gy;  // covariance side first (the larger matrices)
    const int64_t rx = by_size ? padded_rows(mats.rows(x)) : mats.rows(x);
    const int64_t ry = by_size ? padded_rows(mats.rows(y)) : mats.rows(y);
    return rx != ry ? rx > ry : x < y;
  });
  std::vector<Chunk> chunks;
  for (const int64_t i : order) {
    const bool gram = mats.rows(i) <= d;
    const int64_t padded = padded_rows(mats.rows(i));
    if (chunks.empty() || chunks.back().gram != gram || (by_size && chunks.back().padded != padded) ||
        static_cast<int64_t>(chunks.back().members.size()) >= capacity(chunks.back().padded)) {
      chunks.push_back({gram, padded, {}});
    }
    chunks.back().members.push_back(i);
  }
  return chunks;
}

// A thread's float64 buffer of at least `numel` elements, kept for the thread's life.
at::Tensor thread_buffer(int slot, int64_t numel) {
  thread_local at::Tensor buffers[4];
  at::Tensor& buffer = buffers[slot];
  if (!buffer.defined() || buffer.numel() < numel) buffer = at::empty({numel}, at::kDouble);
  return buffer.narrow(0, 0, numel);
}

// stacked [c, padded, d] <- the chunk's matrices (float64, centered if asked, zero rows below).
template <typename scalar_t>
void gather(const RowMatrices& mats, const Chunk& chunk, double* stacked) {
  const int64_t d = mats.table.size(1), slot = chunk.padded * d;
  const scalar_t* table = mats.table.data_ptr<scalar_t>();
  for (size_t j = 0; j < chunk.members.size(); ++j) {
    const int64_t i = chunk.members[j], n = mats.rows(i);
    const int64_t* rows = mats.index.data() + mats.offsets[i];
    double* out = stacked + j * slot;
    for (int64_t r = 0; r < n; ++r) {
      const scalar_t* src = table + rows[r] * d;
      double* dst = out + r * d;
      for (int64_t c = 0; c < d; ++c) dst[c] = static_cast<double>(src[c]);
    }
    if (mats.centered) subtract_row_mean(out, n, d);
    std::memset(out + n * d, 0, (slot - n * d) * sizeof(double));
  }
}

// The chunk's matrices [c, padded, d] (float64, centered if asked, zero rows below) in a thread buffer.
at::Tensor gather_chunk(const RowMatrices& mats, const Chunk& chunk) {
  const int64_t c = static_cast<int64_t>(chunk.members.size()), d = mats.table.size(1);
  at::Tensor stacked = thread_buffer(0, c * chunk.padded * d).view({c, chunk.padded, d});
  AT_DISPATCH_FLOATING_TYPES(mats.table.scalar_type(), "sdd::gather", [&] {
    gather<scalar_t>(mats, chunk, stacked.data_ptr<double>());
  });
  return stacked;
}

// The Grams [c, m, m] of the chunk's gathered matrices `stacked` [c, padded, d] in a thread buffer; a
// matrix with a non-finite entry gets a zero Gram (LAPACK would fail for the whole batch) and is
// flagged in `bad`.
at::Tensor chunk_grams(const at::Tensor& stacked, const Chunk& chunk, std::vector<char>& bad) {
  const int64_t c = stacked.size(0), m = chunk.gram_size(stacked.size(2));
  at::Tensor gram = thread_buffer(1, c * m * m).view({c, m, m});
  const at::Tensor t = stacked.transpose(1, 2);
  if (chunk.gram) {
    at::bmm_out(gram, stacked, t);
  } else {
    at::bmm_out(gram, t, stacked);
  }
  bad.assign(c, 0);
  double* g = gram.data_ptr<double>();
  for (int64_t j = 0; j < c; ++j) {
    double* gj = g + j * m * m;
    for (int64_t e = 0; e < m * m && !bad[j]; ++e) bad[j] = !std::isfinite(gj[e]);
    if (bad[j]) std::fill(gj, gj + m * m, 0.0);
  }
  return gram;
}

// grad_table[rows of i] += grad [n, d] (float64), minus its row mean first when centered (the
// gradient through the centering).
template <typename scalar_t>
void scatter(const RowMatrices& mats, int64_t i, double* grad, at::Tensor& grad_table) {
  const int64_t d = grad_table.size(1), n = mats.rows(i);
  const int64_t* rows = mats.index.data() + mats.offsets[i];
  if (mats.centered) subtract_row_mean(grad, n, d);
  scalar_t* out = grad_table.data_ptr<scalar_t>();
  for (int64_t r = 0; r < n; ++r) {
    scalar_t* dst = out + rows[r] * d;
    for (int64_t c = 0; c < d; ++c) dst[c] += static_cast<scalar_t>(grad[r * d + c]);
  }
}

}  // namespace

void RowMatrices::add(const int64_t* rows, int64_t n) {
  if (offsets.empty()) offsets.push_back(0);
  index.insert(index.end(), rows, rows + n);
  offsets.push_back(static_cast<int64_t>(index.size()));
}

void for_each_spectrum(const RowMatrices& mats, const SpectrumFn& consume, KeptSpectra* keep) {
  if (mats.count() <= 0) return;
  const int64_t d = mats.table.size(1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (keep == nullptr) {
    // Eigenvalues only: the lane-parallel solver, on chunks mixed by size; NaN for a matrix with a
    // non-finite entry.
    const std::vector<Chunk> chunks = make_chunks(mats, false);
    parallel_tasks(static_cast<int64_t>(chunks.size()), [&](int64_t task) {
      const Chunk& chunk = chunks[task];
      const at::Tensor stacked = gather_chunk(mats, chunk);  // [c, padded, d]
      const int64_t c = stacked.size(0), m = chunk.gram_size(d);
      at::Tensor values = thread_buffer(2, c * m).view({c, m});
      if (chunk.gram) {
        gram_eigenvalues(stacked.data_ptr<double>(), c, m, d, values.data_ptr<double>());
      } else {
        std::vector<char> bad;
        const at::Tensor gram = chunk_grams(stacked, chunk, bad);
        symmetric_eigenvalues(gram.data_ptr<double>(), c, m, values.data_ptr<double>());
        for (int64_t j = 0; j < c; ++j) {
          if (bad[j]) std::fill(values.data_ptr<double>() + j * m, values.data_ptr<double>() + (j + 1) * m, nan);
        }
      }
      for (int64_t j = 0; j < c; ++j) consume(chunk.members[j], values.data_ptr<double>() + j * m, m);
    });
    return;
  }
  // With the eigenvectors the backward needs: LAPACK on chunks of one size (its eigenvalues are the
  // ones consumed and kept).
  const std::vector<Chunk> chunks = make_chunks(mats, true);
  keep->offsets.resize(mats.count());
  int64_t total = 0;
  for (const Chunk& chunk : chunks) {
    const int64_t m = chunk.gram_size(d);
    for (const int64_t i : chunk.members) {
      keep->offsets[i] = total;
      total += m * m + m;
    }
  }
  keep->data = at::empty({total}, at::kDouble);
  parallel_tasks(static_cast<int64_t>(chunks.size()), [&](int64_t task) {
    const Chunk& chunk = chunks[task];
    std::vector<char> bad;
    const at::Tensor gram = chunk_grams(gather_chunk(mats, chunk), chunk, bad);  // [c, m, m]
    const int64_t c = gram.size(0), m = gram.size(1);
    at::Tensor values, vectors;  // [c, m], [c, m, m]
    std::tie(values, vectors) = at::linalg_eigh(gram);
    values = values.contiguous();
    vectors = vectors.contiguous();  // LAPACK's column-major batch -> row-major [c, m, m]
    std::vector<double> nans(m, nan);
    for (int64_t j = 0; j < c; ++j) {
      const double* eig = bad[j] ? nans.data() : values.data_ptr<double>() + j * m;
      consume(chunk.members[j], eig, m);
      double* out = keep->data.data_ptr<double>() + keep->offsets[chunk.members[j]];
      const double* vec = vectors.data_ptr<double>() + j * m * m;
      for (int64_t e = 0; e < m * m; ++e) out[e] = bad[j] ? nan : vec[e];
      std::copy(eig, eig + m, out + m * m);
    }
  });
}

void add_spectral_gradients(const RowMatrices& mats, const SpectralWeightFn& weight_fn, at::Tensor& grad_table,
                            const KeptSpectra* kept) {
  if (mats.count() <= 0) return;
  const std::vector<Chunk> chunks = make_chunks(mats, true);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  parallel_tasks(static_cast<int64_t>(chunks.size()), [&](int64_t task) {
    const Chunk& chunk = chunks[task];
    const int64_t c = static_cast<int64_t>(chunk.members.size());
    const int64_t m = chunk.gram_size(mats.table.size(1));
    std::vector<char> bad(c, 0);
    at::Tensor stacked, values, vectors;  // [c, padded, d], [c, m], [c, m, m]
    if (kept != nullptr) {
      stacked = gather_chunk(mats, chunk);
      values = thread_buffer(2, c * m).view({c, m});
      vectors = thread_buffer(3, c * m * m).view({c, m, m});
      for (int64_t j = 0; j < c; ++j) {
        const double* in = kept->data.data_ptr<double>() + kept->offsets[chunk.members[j]];
        std::copy(in, in + m * m, vectors.data_ptr<double>() + j * m * m);
        std::copy(in + m * m, in + m * m + m, values.data_ptr<double>() + j * m);
      }
    } else {
      stacked = gather_chunk(mats, chunk);
      std::tie(values, vectors) = at::linalg_eigh(chunk_grams(stacked, chunk, bad));
      vectors = vectors.contiguous();  // the layout of kept vectors: the same products, bit for bit
    }
    at::Tensor scaled = at::empty({c, 1, m}, values.options());
    std::vector<double> nans(m, nan);
    bool any = false;
    for (int64_t j = 0; j < c; ++j) {
      double* w = scaled.data_ptr<double>() + j * m;
      double scale = 0.0;
      weight_fn(chunk.members[j], bad[j] ? nans.data() : values.data_ptr<double>() + j * m, m, w, scale);
      for (int64_t e = 0; e < m; ++e) w[e] = bad[j] ? nan : w[e] * scale;
      any = any || scale != 0.0 || bad[j];
    }
    if (!any) return;  // every matrix of the chunk has a zero gradient
    // K = U diag(w) U^T per matrix; the gradient is K A (Gram side) or A K (covariance side).
    const at::Tensor kernel = at::bmm(vectors * scaled, vectors.transpose(1, 2));
    at::Tensor grad = chunk.gram ? at::bmm(kernel, stacked) : at::bmm(stacked, kernel);  // [c, padded, d]
    AT_DISPATCH_FLOATING_TYPES(grad_table.scalar_type(), "sdd::scatter", [&] {
      for (int64_t j = 0; j < c; ++j) {
        scatter<scalar_t>(mats, chunk.members[j], grad.select(0, j).data_ptr<double>(), grad_table);
      }
    });
  });
}

}  // namespace cpu
}  // namespace sdd
