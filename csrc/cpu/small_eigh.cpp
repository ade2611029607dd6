#include "small_eigh.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "aligned_vector.h"  // the gathers' mean [d]: its vector loads stay in one cache line
#include "parallel_tasks.h"
#include "row_gather.h"
#include "symmetric_eigenvalues.h"

namespace sdd {
namespace cpu {
namespace {

constexpr int64_t kChunkMatrices = 16;       // matrices per task at most (Gram eigenvalues: one QR's) ...
constexpr int64_t kChunkDoubles = 1 << 19;   // ... and their padded rows at most 4 MiB (Cut::kVectors: 8)
constexpr int64_t kOneGroupRows = 160;      // decompositions of more rows: one group of W per chunk (lanes_pay_off)

struct Chunk {
  bool gram;                    // A A^T (rows <= d) or A^T A
  int64_t padded;               // rows of every matrix, zero-padded
  std::vector<int64_t> members; // matrix indices

  int64_t gram_size(int64_t d) const { return gram ? padded : d; }  // m: the Grams are [m, m]
};

// How make_chunks cuts: for eigenvalues only, for eigen-decompositions (the lanes pay off only on
// near-full groups there, so chunks may hold more and end where padding would cost too much), or
// in runs of one padded size (the backward's products cost m^2 d of the padded size).
enum class Cut { kValues, kVectors, kBySize };

// Fixed chunks, larger matrices first (the costly tasks start early, which evens out the threads'
// finishing times); a function of the matrices only, so a forward and a backward cut the same.
// Matrices of one Gram side in order of decreasing rows (ties by index), cut into runs padded to
// their first (largest) member: the lane-parallel solver then finds full groups even when few
// matrices share a size.
std::vector<Chunk> make_chunks(const RowMatrices& mats, Cut cut) {
  const int64_t d = mats.table.size(1);
  const int64_t doubles = cut == Cut::kVectors ? 2 * kChunkDoubles : kChunkDoubles;
  auto capacity = [&](int64_t padded) {
    // Eigenvalues of Grams: the matrices are gathered one at a time (chunk_source) and each group
    // is reduced at its own size, so a chunk is what one QR takes whatever its rows.
    if (cut == Cut::kValues && padded <= d) return static_cast<int64_t>(eigenvalue_matrices_per_solve());
    const int64_t most = cut == Cut::kVectors && padded > kOneGroupRows ? eigensolver_lanes() : kChunkMatrices;
    return std::clamp<int64_t>(doubles / std::max<int64_t>(1, padded * d), 1, most);
  };
  std::vector<int64_t> order(mats.count());
  for (int64_t i = 0; i < mats.count(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    const bool gx = mats.rows(x) <= d, gy = mats.rows(y) <= d;
    if (gx != gy) return gx < gy;  // covariance side first (the larger matrices)
    return mats.rows(x) != mats.rows(y) ? mats.rows(x) > mats.rows(y) : x < y;
  });
  std::vector<Chunk> chunks;
  for (const int64_t i : order) {
    const bool gram = mats.rows(i) <= d;
    const int64_t padded = gram_rows(mats.rows(i));
    const bool full = !chunks.empty() && static_cast<int64_t>(chunks.back().members.size()) >=
                                             capacity(chunks.back().padded);
    // kBySize: one size per chunk. kVectors: a matrix of at most 3/4 the chunk's rows starts a new
    // one (padded into it, it would cost the solver > 2.4x its own size's m^3).
    const bool other_size = !chunks.empty() && gram &&
                            ((cut == Cut::kBySize && chunks.back().padded != padded) ||
                             (cut == Cut::kVectors && 4 * padded <= 3 * chunks.back().padded));
    if (chunks.empty() || chunks.back().gram != gram || full || other_size) chunks.push_back({gram, padded, {}});
    chunks.back().members.push_back(i);
  }
  return chunks;
}

// A thread's buffer of at least `numel` elements (float64, or `dtype`), kept for the thread's life.
at::Tensor thread_buffer(int slot, int64_t numel, at::ScalarType dtype = at::kDouble) {
  thread_local at::Tensor buffers[5];
  at::Tensor& buffer = buffers[slot];
  if (!buffer.defined() || buffer.numel() < numel || buffer.scalar_type() != dtype) {
    buffer = at::empty({numel}, dtype);
  }
  return buffer.narrow(0, 0, numel);
}

// out [padded, d] (out_t) <- matrix i, centered in float64 if asked, zero rows below; mean: [d] scratch.
template <typename in_t, typename out_t>
void gather_member(const RowMatrices& mats, int64_t i, int64_t padded, double* mean, out_t* out) {
  const int64_t d = mats.table.size(1), n = mats.rows(i);
  gather_rows(mats.table.data_ptr<in_t>(), mats.index.data() + mats.offsets[i], n, d, mats.centered, mean, out);
  std::fill(out + n * d, out + padded * d, out_t(0));
}

// stacked [c, padded, d] (out_t) <- the chunk's matrices (gather_member).
template <typename in_t, typename out_t>
void gather(const RowMatrices& mats, const Chunk& chunk, out_t* stacked) {
  const int64_t d = mats.table.size(1);
  AlignedVector<double> mean(d);
  for (size_t j = 0; j < chunk.members.size(); ++j) {
    gather_member<in_t, out_t>(mats, chunk.members[j], chunk.padded, mean.data(), stacked + j * chunk.padded * d);
  }
}

// Rows of each of the chunk's members [c] (the sizes the Gram solvers take).
std::vector<int64_t> member_rows(const RowMatrices& mats, const Chunk& chunk) {
  std::vector<int64_t> rows;
  rows.reserve(chunk.members.size());
  for (const int64_t i : chunk.members) rows.push_back(mats.rows(i));
  return rows;
}

// The chunk's matrices as a GramSource: member j gathered (float64) into the solver's buffer just
// before its Gram, so it is formed and read in cache, zero-padded to its own rows rounded up to 4
// (the solver's Gram reads no further: the chunk's `sizes`). mean: [d] scratch.
GramSource chunk_source(const RowMatrices& mats, const Chunk& chunk, AlignedVector<double>& mean) {
  return [&mats, &chunk, &mean](int64_t j, double* buffer) -> const double* {
    const int64_t i = chunk.members[j], padded = gram_rows(mats.rows(i));
    if (mats.table.scalar_type() == at::kFloat) {
      gather_member<float, double>(mats, i, padded, mean.data(), buffer);
    } else {
      gather_member<double, double>(mats, i, padded, mean.data(), buffer);
    }
    return buffer;
  };
}

// The chunk's matrices [c, padded, d] (centered in float64 if asked, zero rows below) in a thread
// buffer, as float64 (the Grams) or in the table's own dtype (the operand of the backward's products).
at::Tensor gather_chunk(const RowMatrices& mats, const Chunk& chunk, at::ScalarType dtype = at::kDouble) {
  const int64_t c = static_cast<int64_t>(chunk.members.size()), d = mats.table.size(1);
  at::Tensor stacked = thread_buffer(dtype == at::kDouble ? 0 : 4, c * chunk.padded * d, dtype);
  AT_DISPATCH_FLOATING_TYPES(mats.table.scalar_type(), "sdd::gather", [&] {
    if (dtype == at::kDouble) {
      gather<scalar_t, double>(mats, chunk, stacked.data_ptr<double>());
    } else {
      gather<scalar_t, scalar_t>(mats, chunk, stacked.data_ptr<scalar_t>());
    }
  });
  return stacked.view({c, chunk.padded, d});
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

// grad_table[rows of i] += grad [n, d] (grad_table's dtype), minus its row mean first when centered
// (the gradient through the centering).
template <typename scalar_t>
void scatter(const RowMatrices& mats, int64_t i, scalar_t* grad, at::Tensor& grad_table,
             AlignedVector<double>& mean) {
  scatter_rows(grad, mats.index.data() + mats.offsets[i], mats.rows(i), grad_table.size(1), mats.centered,
               mean.data(), grad_table.data_ptr<scalar_t>());
}

}  // namespace

void RowMatrices::add(const int64_t* rows, int64_t n) {
  if (offsets.empty()) offsets.push_back(0);
  index.insert(index.end(), rows, rows + n);
  offsets.push_back(static_cast<int64_t>(index.size()));
}

namespace {

// Doubles of matrix i's decomposition record: eigenvectors [m, m], then m eigenvalues, m its smaller
// side (its rows on the Gram side, d on the covariance side).
int64_t record_size(const RowMatrices& mats, int64_t i) {
  const int64_t m = std::min(mats.rows(i), mats.table.size(1));
  return m * m + m;
}

// Whether the lane-parallel solver beats LAPACK on a chunk of c matrices of `rows` rows: it runs a
// group of W matrices at the cost of a full one whatever its lanes hold, and its eigenvectors cost
// ~m^3 per group with a larger constant as m grows. Measured (c centred clusters of structured
// features formed and decomposed, one thread, AVX-512 EPYC, 2026-12-01), its time over LAPACK's
// (Gram mm + eigh per matrix) at c = 2 / 4 / 8 / 16 of a 16-lane pair:
//   up to 96 rows   0.9-1.25 / 0.55-0.7 / 0.35-0.45 / 0.3-0.45
//   128-160 rows    1.7-1.9 / 0.9-1.0 / 0.55-0.6 / 0.5-0.6
//   192-224 rows    2.5 / 1.3 / 0.7 / 0.7
// at 256 rows 0.83 for c = 5 and 0.57 for 8; at 320 and 384 only a full group pays (0.85-0.95).
// So a chunk goes to the lanes from 3/16 of a pair up to 96 rows, 5/16 up to 160, 7/16 up to 256,
// never beyond (make_chunks cuts chunks of more than kOneGroupRows at one group).
bool lanes_pay_off(int64_t c, int64_t rows) {
  const int64_t pair = std::min<int64_t>(2 * eigensolver_lanes(), kChunkMatrices);
  if (rows <= 96) return 16 * c >= 3 * pair;
  if (rows <= kOneGroupRows) return 16 * c >= 5 * pair;
  return rows <= 256 && 16 * c >= 7 * pair;
}

// The tasks of a decomposition with eigenvectors: make_chunks' chunks where the lanes pay off, one
// task per matrix elsewhere (LAPACK runs per matrix there: the large ones spread over the threads).
std::vector<Chunk> decomposition_chunks(const RowMatrices& mats) {
  std::vector<Chunk> tasks;
  for (Chunk& chunk : make_chunks(mats, Cut::kVectors)) {
    if (chunk.gram && lanes_pay_off(static_cast<int64_t>(chunk.members.size()), chunk.padded)) {
      tasks.push_back(std::move(chunk));
      continue;
    }
    for (const int64_t i : chunk.members) tasks.push_back({chunk.gram, gram_rows(mats.rows(i)), {i}});
  }
  return tasks;
}

// records[j] <- the decomposition of the chunk's member j (record_size doubles): by the
// lane-parallel solver (each matrix's own rows: the zero padding is left out exactly) where it pays
// off, else by LAPACK eigh on each matrix's own Gram or covariance; NaN for a matrix with a
// non-finite entry.
void decompose_chunk(const RowMatrices& mats, const Chunk& chunk, const std::vector<double*>& records) {
  const int64_t c = static_cast<int64_t>(chunk.members.size()), d = mats.table.size(1);
  const std::vector<int64_t> sizes = member_rows(mats, chunk);
  if (chunk.gram && lanes_pay_off(c, chunk.padded)) {
    AlignedVector<double> mean(d);
    gram_eigh(chunk_source(mats, chunk, mean), c, chunk.padded, d, sizes.data(), records.data());
    return;
  }
  const at::Tensor stacked = gather_chunk(mats, chunk);  // [c, padded, d]
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t j = 0; j < c; ++j) {
    const at::Tensor rows = stacked[j].narrow(0, 0, sizes[j]);  // [n, d]
    const at::Tensor gram = chunk.gram ? at::mm(rows, rows.t()) : at::mm(rows.t(), rows);  // [m, m]
    const int64_t m = gram.size(0);
    double* out = records[j];
    if (!at::isfinite(gram).all().item<bool>()) {
      std::fill(out, out + m * m + m, nan);
      continue;
    }
    at::Tensor values, vectors;
    std::tie(values, vectors) = at::linalg_eigh(gram);
    vectors = vectors.contiguous();  // LAPACK's column-major -> row-major [m, m]
    std::copy(vectors.data_ptr<double>(), vectors.data_ptr<double>() + m * m, out);
    std::copy(values.data_ptr<double>(), values.data_ptr<double>() + m, out + m * m);
  }
}

// A chunk's solve (for_each_spectrum): eigenvalues, or with job.keep the decompositions kept there.
void solve_chunk(const SpectrumJob& job, const Chunk& chunk) {
  const RowMatrices& mats = *job.mats;
  const int64_t d = mats.table.size(1), c = static_cast<int64_t>(chunk.members.size()), m = chunk.gram_size(d);
  if (job.keep != nullptr) {
    // With the eigenvectors the backward needs, kept per matrix.
    std::vector<double*> records(c);
    double* kept = job.keep->data.data_ptr<double>();
    for (int64_t j = 0; j < c; ++j) records[j] = kept + job.keep->offsets[chunk.members[j]];
    decompose_chunk(mats, chunk, records);
    for (int64_t j = 0; j < c; ++j) {
      const int64_t n = std::min(mats.rows(chunk.members[j]), d);
      job.consume(chunk.members[j], records[j] + n * n, n);
    }
    return;
  }
  // Eigenvalues only; NaN for a matrix with a non-finite entry.
  at::Tensor values = thread_buffer(2, c * m).view({c, m});
  if (chunk.gram) {
    AlignedVector<double> mean(d);
    const std::vector<int64_t> sizes = member_rows(mats, chunk);
    gram_eigenvalues(chunk_source(mats, chunk, mean), c, m, d, sizes.data(), values.data_ptr<double>());
  } else {
    std::vector<char> bad;
    const at::Tensor gram = chunk_grams(gather_chunk(mats, chunk), chunk, bad);  // [c, padded, d] -> [c, d, d]
    symmetric_eigenvalues(gram.data_ptr<double>(), c, m, values.data_ptr<double>());
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int64_t j = 0; j < c; ++j) {
      if (bad[j]) std::fill(values.data_ptr<double>() + j * m, values.data_ptr<double>() + (j + 1) * m, nan);
    }
  }
  for (int64_t j = 0; j < c; ++j) job.consume(chunk.members[j], values.data_ptr<double>() + j * m, m);
}

// Relative cost of a chunk's solve: its Grams (or covariances) and their eigensolves. On the Gram
// side each member's Gram is over its own rows, and its eigensolve costs its group's size cubed:
// the chunk's rows, or its group's first (largest) member's when groups are reduced at their own
// size (eigenvalues only).
double chunk_cost(const Chunk& chunk, const RowMatrices& mats, bool group_sizes) {
  const int64_t d = mats.table.size(1), W = eigensolver_lanes();
  const double count = static_cast<double>(chunk.members.size());
  if (!chunk.gram) {
    const double rows = static_cast<double>(chunk.padded), m = static_cast<double>(d);
    return count * (m * m * rows + m * m * m);
  }
  double cost = 0.0;
  for (size_t j = 0; j < chunk.members.size(); ++j) {
    const double own = static_cast<double>(gram_rows(mats.rows(chunk.members[j])));
    const double m = static_cast<double>(group_sizes ? gram_rows(mats.rows(chunk.members[j / W * W])) : chunk.padded);
    cost += own * own * static_cast<double>(d) + m * m * m;
  }
  return cost;
}

}  // namespace

void for_each_spectrum(const RowMatrices& mats, const SpectrumFn& consume, KeptSpectra* keep) {
  // Not owned: the job lives only as long as this call.
  const std::shared_ptr<const RowMatrices> borrowed(&mats, [](const RowMatrices*) {});
  for_each_spectrum({SpectrumJob{borrowed, consume, keep}});
}

void for_each_spectrum(const std::vector<SpectrumJob>& jobs, int64_t side_tasks,
                       const std::function<void(int64_t)>& side) {
  std::vector<std::vector<Chunk>> chunks(jobs.size());
  std::vector<std::pair<size_t, size_t>> tasks;  // (job, chunk)
  std::vector<double> cost;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const RowMatrices& mats = *jobs[j].mats;
    if (mats.count() <= 0) continue;
    KeptSpectra* keep = jobs[j].keep;
    chunks[j] = keep != nullptr ? decomposition_chunks(mats) : make_chunks(mats, Cut::kValues);
    if (keep != nullptr) {
      keep->offsets.resize(mats.count());
      int64_t total = 0;
      for (int64_t i = 0; i < mats.count(); ++i) {
        keep->offsets[i] = total;
        total += record_size(mats, i);
      }
      keep->data = at::empty({total}, at::kDouble);
    }
    for (size_t c = 0; c < chunks[j].size(); ++c) {
      tasks.emplace_back(j, c);
      cost.push_back(chunk_cost(chunks[j][c], mats, keep == nullptr));
    }
  }
  std::vector<size_t> order(tasks.size());
  for (size_t t = 0; t < order.size(); ++t) order[t] = t;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
  if (!side) side_tasks = 0;
  parallel_tasks(side_tasks + static_cast<int64_t>(order.size()), [&](int64_t task) {
    if (task < side_tasks) {
      side(task);
      return;
    }
    const std::pair<size_t, size_t>& at = tasks[order[task - side_tasks]];
    solve_chunk(jobs[at.first], chunks[at.first][at.second]);
  });
}

void add_spectral_gradients(const RowMatrices& mats, const SpectralWeightFn& weight_fn, at::Tensor& grad_table,
                            const KeptSpectra* kept) {
  if (mats.count() <= 0) return;
  KeptSpectra solved;
  if (kept == nullptr) {  // solved as a forward that keeps them solves them: the same bits
    for_each_spectrum(mats, [](int64_t, const double*, int64_t) {}, &solved);
    kept = &solved;
  }
  const int64_t d = mats.table.size(1);
  const std::vector<Chunk> chunks = make_chunks(mats, Cut::kBySize);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  parallel_tasks(static_cast<int64_t>(chunks.size()), [&](int64_t task) {
    const Chunk& chunk = chunks[task];
    const int64_t c = static_cast<int64_t>(chunk.members.size()), m = chunk.gram_size(d);
    // vectors [c, m, m]: member j's [n, n] eigenvectors U in its top-left corner, zeros around;
    // weighted: U diag(w) there, w its weights times its scale.
    at::Tensor vectors = thread_buffer(3, c * m * m).view({c, m, m});
    at::Tensor weighted = at::empty({c, m, m}, vectors.options());
    std::vector<double> weights(m);
    bool any = false;
    for (int64_t j = 0; j < c; ++j) {
      const int64_t n = std::min(mats.rows(chunk.members[j]), d);
      const double* record = kept->data.data_ptr<double>() + kept->offsets[chunk.members[j]];
      double scale = 0.0;
      weight_fn(chunk.members[j], record + n * n, n, weights.data(), scale);
      const bool bad = std::isnan(record[n * n]);  // a matrix with a non-finite entry: NaN throughout
      for (int64_t e = 0; e < n; ++e) weights[e] = bad ? nan : weights[e] * scale;
      double* corner = vectors.data_ptr<double>() + j * m * m;
      double* weighted_corner = weighted.data_ptr<double>() + j * m * m;
      for (int64_t r = 0; r < n; ++r) {  // each element written once: zeros around the corner
        for (int64_t e = 0; e < n; ++e) {
          corner[r * m + e] = record[r * n + e];
          weighted_corner[r * m + e] = record[r * n + e] * weights[e];
        }
        std::fill(corner + r * m + n, corner + (r + 1) * m, 0.0);
        std::fill(weighted_corner + r * m + n, weighted_corner + (r + 1) * m, 0.0);
      }
      std::fill(corner + n * m, corner + m * m, 0.0);
      std::fill(weighted_corner + n * m, weighted_corner + m * m, 0.0);
      any = any || scale != 0.0 || bad;
    }
    if (!any) return;  // every matrix of the chunk has a zero gradient
    // K = U diag(w) U^T per matrix (float64); the gradient is K A (Gram side) or A K (covariance
    // side), in the table's dtype: a float32 gradient takes float32 products (rounding ~sqrt(m) eps32
    // relative, under the SPEC's float32 tolerances) at twice the float64 rate.
    const at::Tensor stacked = gather_chunk(mats, chunk, mats.table.scalar_type());  // [c, padded, d]
    const at::Tensor kernel = at::bmm(weighted, vectors.transpose(1, 2)).to(stacked.scalar_type());
    const at::Tensor grad = chunk.gram ? at::bmm(kernel, stacked) : at::bmm(stacked, kernel);  // [c, padded, d]
    AlignedVector<double> mean(d);
    AT_DISPATCH_FLOATING_TYPES(grad_table.scalar_type(), "sdd::scatter", [&] {
      for (int64_t j = 0; j < c; ++j) {
        scatter<scalar_t>(mats, chunk.members[j], grad.select(0, j).data_ptr<scalar_t>(), grad_table, mean);
      }
    });
  });
}

}  // namespace cpu
}  // namespace sdd
