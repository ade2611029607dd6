#include "small_eigh.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <utility>

namespace sdd {
namespace cpu {
namespace {

constexpr int64_t kPadMultiple = 4;  // bucket granularity of row counts: LAPACK cost grows as size^3

using BucketKey = std::pair<bool, int64_t>;  // (gram side, padded rows)
using BucketList = std::vector<std::pair<BucketKey, std::vector<int64_t>>>;  // key -> member indices

// The matrices grouped by (side, padded rows), in key order.
BucketList make_buckets(const std::vector<at::Tensor>& mats) {
  std::map<BucketKey, std::vector<int64_t>> buckets;
  for (int64_t i = 0; i < static_cast<int64_t>(mats.size()); ++i) {
    const int64_t rows = mats[i].size(0), cols = mats[i].size(1);
    const int64_t padded = (rows + kPadMultiple - 1) / kPadMultiple * kPadMultiple;
    buckets[{rows <= cols, padded}].push_back(i);
  }
  return BucketList(buckets.begin(), buckets.end());
}

// [members, padded, C] float64: the bucket's matrices with zero rows below each. A view when
// they already lie back to back with no padding (effective_rank's [Q, R, d] input), else one
// memcpy (+ memset of the padding rows) per matrix.
at::Tensor stack_padded(const std::vector<at::Tensor>& mats, const std::vector<int64_t>& members, int64_t padded) {
  const at::Tensor& first = mats[members[0]];
  const int64_t n = static_cast<int64_t>(members.size()), cols = first.size(1), slot = padded * cols;
  bool back_to_back = true;
  for (int64_t j = 0; j < n && back_to_back; ++j) {
    const at::Tensor& mat = mats[members[j]];
    TORCH_INTERNAL_ASSERT(mat.scalar_type() == at::kDouble && mat.is_contiguous());
    back_to_back = mat.size(0) == padded && mat.data_ptr<double>() == first.data_ptr<double>() + j * slot;
  }
  if (back_to_back) return first.as_strided({n, padded, cols}, {slot, cols, 1});
  at::Tensor stacked = at::empty({n, padded, cols}, first.options());
  double* out = stacked.data_ptr<double>();
  for (int64_t j = 0; j < n; ++j) {
    const at::Tensor& mat = mats[members[j]];
    std::memcpy(out + j * slot, mat.data_ptr<double>(), mat.numel() * sizeof(double));
    std::memset(out + j * slot + mat.numel(), 0, (slot - mat.numel()) * sizeof(double));
  }
  return stacked;
}

// Grams and their spectra in float64 whatever the input dtype. An fp32 Gram carries
// eigenvalue noise of ~1e-7 of the largest, so any singular value under ~3e-4 of the
// largest is lost in it (sqrt amplifies the noise); real clusters have such directions,
// and dropping them misses the fp32 tolerance of 1e-4. fp64 costs ~1.3x in the eigensolver.
at::Tensor smaller_gram(const at::Tensor& stacked, bool gram) {
  const at::Tensor t = stacked.transpose(1, 2);
  return gram ? at::bmm(stacked, t) : at::bmm(t, stacked);
}

struct BucketSpectra {
  std::vector<at::Tensor> stacked;  // per bucket [members, padded, C]: the zero-padded matrices (with vectors only)
  std::vector<at::Tensor> values;   // per bucket [members, m] (ascending)
  std::vector<at::Tensor> vectors;  // per bucket [members, m, m] (undefined unless requested)
};

// Grams (one bmm per bucket, threaded by ATen), then their eigen-decompositions. Batched LAPACK
// solves its matrices one after another on the calling thread, so every bucket is cut into
// `parts` equal slices and part p of every bucket runs on thread p: the same work per thread.
BucketSpectra bucket_spectra(const std::vector<at::Tensor>& mats, const BucketList& buckets, bool with_vectors) {
  const int64_t nb = static_cast<int64_t>(buckets.size());
  BucketSpectra out{std::vector<at::Tensor>(nb), std::vector<at::Tensor>(nb), std::vector<at::Tensor>(nb)};
  std::vector<at::Tensor> grams(nb);
  for (int64_t i = 0; i < nb; ++i) {
    const auto& [key, members] = buckets[i];
    const at::Tensor stacked = stack_padded(mats, members, key.second);
    grams[i] = smaller_gram(stacked, key.first);
    out.values[i] = at::empty(grams[i].sizes().slice(0, 2), grams[i].options());
    if (with_vectors) {
      out.stacked[i] = stacked;  // the gradient needs them; the forward frees them
      out.vectors[i] = at::empty_like(grams[i]);
    }
  }
  // A matrix with NaN / Inf makes LAPACK fail for its whole batch: solve a zero matrix in its
  // place and report NaN eigenvalues (and vectors) for it, as the CUDA kernels do.
  std::vector<at::Tensor> not_finite(nb);
  for (int64_t i = 0; i < nb; ++i) {
    const at::Tensor bad = at::logical_not(at::isfinite(grams[i]).flatten(1).all(1));  // [members]
    if (bad.any().item<bool>()) {
      grams[i].masked_fill_(bad.view({-1, 1, 1}), 0.0);
      not_finite[i] = bad;
    }
  }
  const int64_t parts = std::max<int64_t>(1, at::get_num_threads());
  at::parallel_for(0, parts * nb, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task % nb, part = task / nb, members = grams[i].size(0);
      const int64_t first = members * part / parts, count = members * (part + 1) / parts - first;
      if (count <= 0) continue;
      const at::Tensor slice = grams[i].narrow(0, first, count);
      if (with_vectors) {
        const auto [w, v] = at::linalg_eigh(slice);
        out.values[i].narrow(0, first, count).copy_(w);
        out.vectors[i].narrow(0, first, count).copy_(v);
      } else {
        out.values[i].narrow(0, first, count).copy_(at::linalg_eigvalsh(slice));
      }
    }
  });
  for (int64_t i = 0; i < nb; ++i) {
    if (!not_finite[i].defined()) continue;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    out.values[i].masked_fill_(not_finite[i].view({-1, 1}), nan);
    if (with_vectors) out.vectors[i].masked_fill_(not_finite[i].view({-1, 1, 1}), nan);
  }
  return out;
}

}  // namespace

std::vector<at::Tensor> small_side_eigenvalues(const std::vector<at::Tensor>& mats) {
  const BucketList buckets = make_buckets(mats);
  const BucketSpectra spectra_of = bucket_spectra(mats, buckets, false);
  std::vector<at::Tensor> eigenvalues(mats.size());
  for (size_t i = 0; i < buckets.size(); ++i) {
    const std::vector<int64_t>& members = buckets[i].second;
    for (size_t j = 0; j < members.size(); ++j) eigenvalues[members[j]] = spectra_of.values[i].select(0, j);
  }
  return eigenvalues;
}

void add_spectral_gradients(const std::vector<at::Tensor>& mats, const SpectralWeightFn& weight_fn,
                            std::vector<at::Tensor>& grads) {
  const BucketList buckets = make_buckets(mats);
  const BucketSpectra spectra_of = bucket_spectra(mats, buckets, true);
  std::vector<double> weights;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const auto& [key, members] = buckets[i];
    const at::Tensor& values = spectra_of.values[i];
    const at::Tensor& vectors = spectra_of.vectors[i];
    const int64_t m = values.size(1);
    at::Tensor scaled = at::empty({static_cast<int64_t>(members.size()), 1, m}, values.options());
    for (size_t j = 0; j < members.size(); ++j) {
      double scale = 0.0;
      weight_fn(members[j], values.select(0, j), weights, scale);
      double* out = scaled.select(0, j).data_ptr<double>();
      for (int64_t e = 0; e < m; ++e) out[e] = weights[e] * scale;
    }
    // K = U diag(w) U^T per matrix; the gradient is K A (Gram side) or A K (covariance side).
    const at::Tensor kernel = at::bmm(vectors * scaled, vectors.transpose(1, 2));
    const at::Tensor& stacked = spectra_of.stacked[i];
    const at::Tensor padded_grad = key.first ? at::bmm(kernel, stacked) : at::bmm(stacked, kernel);
    for (size_t j = 0; j < members.size(); ++j) {
      at::Tensor& grad = grads[members[j]];
      grad.add_(padded_grad.select(0, j).narrow(0, 0, grad.size(0)));
    }
  }
}

}  // namespace cpu
}  // namespace sdd
