// Calls sdd::dse from C++ through the dispatcher, as a libtorch user would.
//
// Build with the root CMakeLists.txt (`make cmake-test`). The executable links libsdd_fast.so
// with --no-as-needed, so loading it runs the TORCH_LIBRARY(sdd, ...) registrations; this
// program never names a symbol of the library itself.
//
// It then backpropagates through the op (the autograd kernels are registered in C++,
// csrc/autograd/), as a training loop using DSE as a regularizer would.
//
// Exit status: 0 when the 5 values (dse, inter, intra_image, intra_batch, dim) are finite and
// the gradient of dse with respect to the features is finite and nonzero, 1 otherwise, 2 on an
// exception (e.g. the op is not registered).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

int main() {
  try {
    at::manual_seed(0);
    const at::Tensor feats = at::randn({16, 196, 64}, at::TensorOptions().dtype(at::kFloat)).requires_grad_(true);

    // dse(Tensor feats, int local_k=3, int global_k=24, int group=8, bool normalize=True,
    //     int iters=20, float tol=1e-4, int n_init=1, str seeding="greedy", int seed=0,
    //     Tensor? local_labels=None, Tensor? global_labels=None) -> Tensor
    const auto op = c10::Dispatcher::singleton()
                        .findSchemaOrThrow("sdd::dse", "")
                        .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, int64_t, bool, int64_t, double,
                                          int64_t, c10::string_view, int64_t, const std::optional<at::Tensor>&,
                                          const std::optional<at::Tensor>&)>();
    const at::Tensor values = op.call(feats, /*local_k=*/3, /*global_k=*/24, /*group=*/8, /*normalize=*/true,
                                      /*iters=*/20, /*tol=*/1e-4, /*n_init=*/1, /*seeding=*/"greedy",
                                      /*seed=*/0, std::nullopt, std::nullopt);

    const at::Tensor v = values.detach().to(at::kDouble).contiguous().reshape({-1});
    if (v.numel() != 5) {
      std::cerr << "call_dse: expected 5 values, got shape " << values.sizes() << "\n";
      return 1;
    }
    static const char* const names[5] = {"dse", "inter", "intra_image", "intra_batch", "dim"};
    const double* data = v.data_ptr<double>();
    bool finite = true;
    for (int i = 0; i < 5; ++i) {
      std::cout << names[i] << " = " << data[i] << "\n";
      finite = finite && std::isfinite(data[i]);
    }
    if (!finite) {
      std::cerr << "call_dse: FAILED, a value is not finite\n";
      return 1;
    }

    // d dse / d feats: values[0] is dse; its gradient comes from sdd::dse_backward.
    values.select(0, 0).backward();
    const at::Tensor grad = feats.grad();
    if (!grad.defined() || grad.sizes() != feats.sizes()) {
      std::cerr << "call_dse: FAILED, no gradient of the features' shape\n";
      return 1;
    }
    const double grad_norm = grad.to(at::kDouble).norm().item<double>();
    std::cout << "||d dse / d feats|| = " << grad_norm << "\n";
    if (!std::isfinite(grad_norm) || grad_norm == 0.0 || !grad.isfinite().all().item<bool>()) {
      std::cerr << "call_dse: FAILED, the gradient is not finite or is zero\n";
      return 1;
    }
    std::cout << "call_dse: OK (sdd::dse via the dispatcher, " << values.dtype() << ", shape " << values.sizes()
              << ", and its backward)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "call_dse: exception: " << e.what() << "\n";
    return 2;
  }
}
