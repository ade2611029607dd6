// The CPU dse kernels (registered as sdd::dse_forward / dse_backward) with one addition: the
// forward can keep its eigen-decompositions, and the backward then reuses them instead of
// building every Gram and solving it again. The autograd function calls these two directly for
// plain CPU tensors that require grad (csrc/autograd/dse_kernel.cpp); every other call goes
// through the ops, whose backward recomputes the spectra.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

#include <tuple>
#include <vector>

namespace sdd {
namespace cpu {

using DseForward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Opaque to callers: the kept spectra of M_intra_image, M_intra_batch and M_dim, as tensors (so an
// autograd context can save them): [data, offsets] for each of the three, then the prepared
// features and their numbers (scale, mean, ...): kDseSpectraTensors in all.
using DseSpectra = std::vector<at::Tensor>;
constexpr int kDseSpectraTensors = 8;

DseForward dse_forward(const at::Tensor& feats, int64_t local_k, int64_t global_k, int64_t group, bool normalize,
                       int64_t iters, double tol, int64_t n_init, c10::string_view seeding, int64_t seed,
                       const c10::optional<at::Tensor>& local_labels, const c10::optional<at::Tensor>& global_labels,
                       DseSpectra* keep);

at::Tensor dse_backward(const at::Tensor& grad, const at::Tensor& values, const at::Tensor& feats,
                        const at::Tensor& local_labels, const at::Tensor& global_labels, const at::Tensor& centroids,
                        const at::Tensor& other, const at::Tensor& perm, int64_t local_k, int64_t global_k,
                        int64_t group, bool normalize, const DseSpectra* kept);

}  // namespace cpu
}  // namespace sdd
