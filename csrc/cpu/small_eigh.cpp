#include "small_eigh.h"

#include <ATen/ATen.h>

#include <cstring>
#include <map>
#include <utility>

#include "../common/spectral.h"

namespace sdd {
namespace cpu {
namespace {

constexpr int64_t kPadMultiple = 4;  // bucket granularity of row counts: LAPACK cost grows as size^3

using BucketKey = std::pair<bool, int64_t>;  // (gram side, padded rows)

std::map<BucketKey, std::vector<int64_t>> make_buckets(const std::vector<at::Tensor>& mats) {
  std::map<BucketKey, std::vector<int64_t>> buckets;
  for (int64_t i = 0; i < static_cast<int64_t>(mats.size()); ++i) {
    const int64_t rows = mats[i].size(0), cols = mats[i].size(1);
    const int64_t padded = (rows + kPadMultiple - 1) / kPadMultiple * kPadMultiple;
    buckets[{rows <= cols, padded}].push_back(i);
  }
  return buckets;
}

// [members, padded, C] float64: the bucket's matrices, zero rows below each (one memcpy each).
at::Tensor stack_padded(const std::vector<at::Tensor>& mats, const std::vector<int64_t>& members, int64_t padded) {
  const at::Tensor& first = mats[members[0]];
  at::Tensor stacked = at::zeros({static_cast<int64_t>(members.size()), padded, first.size(1)}, first.options());
  const int64_t slot = padded * first.size(1);
  for (size_t j = 0; j < members.size(); ++j) {
    const at::Tensor& mat = mats[members[j]];
    TORCH_INTERNAL_ASSERT(mat.scalar_type() == at::kDouble && mat.is_contiguous());
    std::memcpy(stacked.data_ptr<double>() + j * slot, mat.data_ptr<double>(), mat.numel() * sizeof(double));
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

}  // namespace

std::vector<SmallSideSpectrum> small_side_spectra(const std::vector<at::Tensor>& mats, bool with_vectors) {
  std::vector<SmallSideSpectrum> spectra(mats.size());
  for (const auto& [key, members] : make_buckets(mats)) {
    const at::Tensor grams = smaller_gram(stack_padded(mats, members, key.second), key.first);
    at::Tensor values, vectors;
    if (with_vectors) {
      std::tie(values, vectors) = at::linalg_eigh(grams);
    } else {
      values = at::linalg_eigvalsh(grams);
    }
    values = values.contiguous();
    for (size_t j = 0; j < members.size(); ++j) {
      spectra[members[j]] = {values.select(0, j), with_vectors ? vectors.select(0, j) : at::Tensor(), key.first,
                             key.second, common::degenerate_eigenvalue_fraction<double>()};
    }
  }
  return spectra;
}

void add_spectral_gradients(const std::vector<at::Tensor>& mats, const SpectralWeightFn& weight_fn,
                            std::vector<at::Tensor>& grads) {
  std::vector<double> weights;
  for (const auto& [key, members] : make_buckets(mats)) {
    const at::Tensor stacked = stack_padded(mats, members, key.second);
    const auto [eigenvalues, vectors] = at::linalg_eigh(smaller_gram(stacked, key.first));
    const at::Tensor values = eigenvalues.contiguous();
    const int64_t m = values.size(1);
    at::Tensor scaled = at::empty({static_cast<int64_t>(members.size()), 1, m}, values.options());
    for (size_t j = 0; j < members.size(); ++j) {
      const SmallSideSpectrum spectrum{values.select(0, j).contiguous(), vectors.select(0, j), key.first,
                                       key.second, common::degenerate_eigenvalue_fraction<double>()};
      double scale = 0.0;
      weight_fn(members[j], spectrum, weights, scale);
      double* out = scaled.select(0, j).data_ptr<double>();
      for (int64_t e = 0; e < m; ++e) out[e] = weights[e] * scale;
    }
    // K = U diag(w) U^T per matrix; the gradient is K A (Gram side) or A K (covariance side).
    const at::Tensor kernel = at::bmm(vectors * scaled, vectors.transpose(1, 2));
    const at::Tensor padded_grad = key.first ? at::bmm(kernel, stacked) : at::bmm(stacked, kernel);
    for (size_t j = 0; j < members.size(); ++j) {
      at::Tensor& grad = grads[members[j]];
      grad.add_(padded_grad.select(0, j).narrow(0, 0, grad.size(0)));
    }
  }
}

}  // namespace cpu
}  // namespace sdd
