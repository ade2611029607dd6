#include "prepare.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <cmath>
#include <optional>
#include <utility>

#include "../inputs/features.h"  // kNormEps, kCollapseFraction
#include "../inputs/options.h"   // compute_dtype
#include "parallel_tasks.h"
#include "prepare_rows.h"
#include "tensor_utils.h"  // sum_of_squares

namespace sdd {
namespace cpu {
namespace {

constexpr int64_t kChunks = 64;  // fixed row chunks: per-chunk partial sums are added in chunk order

// How many chunks `rows` rows are cut into.
int64_t row_chunks(int64_t rows) { return std::min<int64_t>(kChunks, std::max<int64_t>(1, rows)); }

// Per chunk [begin, end) of rows, fn(begin, end, chunk); chunks run as tasks.
template <typename Fn>
void over_row_chunks(int64_t rows, const Fn& fn) {
  const int64_t chunks = row_chunks(rows);
  parallel_tasks(chunks, [&](int64_t chunk) {
    int64_t begin = 0, end = 0;
    chunk_range(rows, chunks, chunk, begin, end);
    fn(begin, end, chunk);
  });
}

// partials[chunk] <- the sum over the chunk's rows of x [rows, d] of ||x_i - mean||, in row order.
template <typename scalar_t>
void scale_partial(const scalar_t* x, int64_t rows, int64_t d, const double* mean, int64_t chunk, double* partials) {
  int64_t begin = 0, end = 0;
  chunk_range(rows, row_chunks(rows), chunk, begin, end);
  double sum = 0.0;
  for (int64_t i = begin; i < end; ++i) sum += std::sqrt(sum_of_squares(x + i * d, d, mean));
  partials[chunk] = sum;
}

template <typename in_t, typename out_t>
PreparedFeatures prepare(const at::Tensor& feats, bool normalize, at::ScalarType compute, bool defer_scale) {
  const int64_t d = feats.size(-1), rows = feats.numel() / d;
  const at::Tensor f = feats.contiguous();
  const in_t* src = f.data_ptr<in_t>();
  const int64_t chunks = row_chunks(rows);
  // The root-mean-square norm of the (normalised) rows gives the power-of-two factor. Normalised rows
  // have norms <= 1, so the factor is 1 unless most rows are (near) zero: then pass 2 runs with 1 and
  // measures the norms itself (one pass over the input less, one parallel region less), and runs
  // again only when the factor it finds is not 1. Without normalisation, pass 1 measures them first.
  std::vector<double> partial(chunks, 0.0);
  std::vector<char> finite(chunks, 1);
  // sq: a row's sum of squares, in float64 (sum_of_squares): no overflow from any fp32 / fp16 value.
  auto measure_row = [&](double sq, int64_t chunk) {
    if (!std::isfinite(sq)) finite[chunk] = 0;
    const double norm = std::max(std::sqrt(sq), kNormEps);
    partial[chunk] += normalize ? sq / (norm * norm) : sq;
  };
  auto factor_of = [&]() -> std::optional<double> {  // the factor from partial; none when a row is not finite
    double total = 0.0;
    for (double p : partial) total += p;
    for (char ok : finite) {
      if (!ok) return std::nullopt;
    }
    const double rms = std::sqrt(total / static_cast<double>(rows));
    return std::isfinite(rms) && rms > 0 ? std::exp2(-std::round(std::log2(rms))) : 1.0;
  };
  PreparedFeatures out{at::Tensor(), 1.0, {}, 0.0, false, false};
  double factor = 1.0;
  if (!normalize) {  // Pass 1
    over_row_chunks(rows, [&](int64_t begin, int64_t end, int64_t chunk) {
      for (int64_t i = begin; i < end; ++i) measure_row(sum_of_squares(src + i * d, d), chunk);
    });
    const std::optional<double> found = factor_of();
    if (!found) return out;  // not finite: the caller returns NaN
    factor = *found;
  }
  // Pass 2: x = f / max(||f||, eps) * factor, rounded to the compute dtype; column sums and norms of x.
  at::Tensor x_tensor = at::empty(feats.sizes(), feats.options().dtype(compute));
  out_t* x = x_tensor.data_ptr<out_t>();
  std::vector<double> column_sums(chunks * d, 0.0), norm_sums(chunks, 0.0), row_norms(rows);
  auto pass_two = [&](bool measure) {
    std::fill(column_sums.begin(), column_sums.end(), 0.0);
    std::fill(norm_sums.begin(), norm_sums.end(), 0.0);
    over_row_chunks(rows, [&](int64_t begin, int64_t end, int64_t chunk) {
      double* sums = column_sums.data() + chunk * d;
      for (int64_t i = begin; i < end; ++i) {
        const in_t* fi = src + i * d;
        out_t* xi = x + i * d;
        const double sq = normalize ? sum_of_squares(fi, d) : 0.0;
        if (measure) measure_row(sq, chunk);
        const double norm = normalize ? std::max(std::sqrt(sq), kNormEps) : 1.0;
        normalized_row(fi, d, norm, factor, xi, sums);
        row_norms[i] = sum_of_squares(xi, d);
        norm_sums[chunk] += std::sqrt(row_norms[i]);
      }
    });
  };
  pass_two(normalize);
  if (normalize) {
    const std::optional<double> found = factor_of();
    if (!found) return out;  // not finite: the caller returns NaN
    if (*found != factor) {
      factor = *found;
      pass_two(false);
    }
  }
  out = {x_tensor, factor, std::vector<double>(d, 0.0), 0.0, false, true, std::move(row_norms)};
  for (int64_t c = 0; c < chunks; ++c) {
    out.mean_norm += norm_sums[c];
    for (int64_t j = 0; j < d; ++j) out.mean[j] += column_sums[c * d + j];
  }
  out.mean_norm /= static_cast<double>(rows);
  for (double& m : out.mean) m /= static_cast<double>(rows);
  if (defer_scale) return out;
  // Pass 3: s = mean ||x_i - mean||.
  parallel_tasks(chunks, [&](int64_t chunk) { scale_part(out, chunk, norm_sums.data()); });
  finish_scale(out, norm_sums.data());
  return out;
}

}  // namespace

PreparedFeatures prepare_features(const at::Tensor& feats, bool normalize, bool defer_scale) {
  const at::ScalarType compute = compute_dtype(feats);
  PreparedFeatures out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats.scalar_type(), "sdd::prepare_features", [&] {
    using in_t = scalar_t;
    if (compute == at::kDouble) {
      out = prepare<in_t, double>(feats, normalize, compute, defer_scale);
    } else {
      out = prepare<in_t, float>(feats, normalize, compute, defer_scale);
    }
  });
  return out;
}

int64_t scale_chunks(const PreparedFeatures& prep) { return row_chunks(prep.x.numel() / prep.x.size(-1)); }

void scale_part(const PreparedFeatures& prep, int64_t chunk, double* partials) {
  const int64_t d = prep.x.size(-1), rows = prep.x.numel() / d;
  AT_DISPATCH_FLOATING_TYPES(prep.x.scalar_type(), "sdd::scale_part", [&] {
    scale_partial(prep.x.data_ptr<scalar_t>(), rows, d, prep.mean.data(), chunk, partials);
  });
}

void finish_scale(PreparedFeatures& prep, const double* partials) {
  const int64_t rows = prep.x.numel() / prep.x.size(-1);
  prep.scale = 0.0;
  for (int64_t c = 0; c < row_chunks(rows); ++c) prep.scale += partials[c];
  prep.scale /= static_cast<double>(rows);
  prep.collapsed = prep.scale <= kCollapseFraction * prep.mean_norm;
}

void add_scale_gradient(const PreparedFeatures& prep, double coeff, at::Tensor& gx) {
  const int64_t d = prep.x.size(-1), rows = prep.x.numel() / d;
  const int64_t chunks = row_chunks(rows);
  AT_DISPATCH_FLOATING_TYPES(prep.x.scalar_type(), "sdd::add_scale_gradient", [&] {
    const scalar_t* x = prep.x.data_ptr<scalar_t>();
    scalar_t* g = gx.data_ptr<scalar_t>();
    // u_i into a per-row inverse norm (0: x_i is the mean); their column sums per chunk.
    std::vector<double> inverse(rows), sums(chunks * d, 0.0);
    over_row_chunks(rows, [&](int64_t begin, int64_t end, int64_t chunk) {
      double* s = sums.data() + chunk * d;
      for (int64_t i = begin; i < end; ++i) {
        const double norm = std::sqrt(sum_of_squares(x + i * d, d, prep.mean.data()));
        inverse[i] = norm > 0 ? 1.0 / std::max(norm, kNormEps) : 0.0;
        for (int64_t j = 0; j < d; ++j) s[j] += (static_cast<double>(x[i * d + j]) - prep.mean[j]) * inverse[i];
      }
    });
    std::vector<double> mean_unit(d, 0.0);
    for (int64_t c = 0; c < chunks; ++c) {
      for (int64_t j = 0; j < d; ++j) mean_unit[j] += sums[c * d + j];
    }
    for (double& m : mean_unit) m /= static_cast<double>(rows);
    const double weight = coeff / static_cast<double>(rows);
    over_row_chunks(rows, [&](int64_t begin, int64_t end, int64_t) {
      for (int64_t i = begin; i < end; ++i) {
        for (int64_t j = 0; j < d; ++j) {
          const double unit = (static_cast<double>(x[i * d + j]) - prep.mean[j]) * inverse[i];
          g[i * d + j] += static_cast<scalar_t>((unit - mean_unit[j]) * weight);
        }
      }
    });
  });
}

at::Tensor unscale_gradient(const at::Tensor& gx, const PreparedFeatures& prep, const at::Tensor& feats,
                            bool normalize) {
  const int64_t d = feats.size(-1), rows = feats.numel() / d;
  const at::Tensor f = feats.contiguous();
  // In place when the dtypes agree: each row of gx is read before it is written.
  at::Tensor out = gx.scalar_type() == feats.scalar_type() ? gx : at::empty(feats.sizes(), feats.options());
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "sdd::unscale_gradient", [&] {
    using grad_t = scalar_t;
    const grad_t* g = gx.data_ptr<grad_t>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, feats.scalar_type(), "sdd::unscale_gradient", [&] {
      const scalar_t* fd = f.data_ptr<scalar_t>();
      scalar_t* o = out.data_ptr<scalar_t>();
      over_row_chunks(rows, [&](int64_t begin, int64_t end, int64_t) {
        for (int64_t i = begin; i < end; ++i) {
          const grad_t* gi = g + i * d;
          const scalar_t* fi = fd + i * d;
          scalar_t* oi = o + i * d;
          if (!normalize) {
            for (int64_t j = 0; j < d; ++j) oi[j] = static_cast<scalar_t>(static_cast<grad_t>(gi[j] * prep.factor));
            continue;
          }
          // One division per row (a division per element costs more than the rest of the pass).
          unscaled_row(gi, fi, d, std::sqrt(sum_of_squares(fi, d)), prep.factor, oi);
        }
      });
    });
  });
  return out;
}

}  // namespace cpu
}  // namespace sdd
