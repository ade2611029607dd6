// The emulated CUDA kernels (sdd_emu::*, csrc/emulator/emulator_ops.cpp) against the CPU kernels
// (sdd::*, libsdd_fast) on small random CPU inputs, as a plain C++ program: built with
// -fsanitize=thread or -fsanitize=address by `make emu-sanitize` (CMake option
// SDD_EMULATOR_CHECK), so ThreadSanitizer sees every barrier and shared-memory access of the
// kernel bodies and AddressSanitizer every index into the exact-size shared buffer and the
// tensors. (Not from Python: the interpreter and torch's OpenMP runtime are not instrumented.)
//
// Prints one PASS/FAIL line per check; exit status 1 when any check fails (or throws).
// Tolerances: values 1e-4 relative (elementwise), gradients 1e-3 relative in norm, counts,
// nearest-other indices and the permutation equal, k-means labels the same partition.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace {

using Values = std::vector<c10::IValue>;

// Calls `ns::op` through the dispatcher (boxed) and returns its outputs.
Values call(const std::string& ns, const char* op, Values args) {
  const c10::OperatorHandle handle = c10::Dispatcher::singleton().findSchemaOrThrow((ns + "::" + op).c_str(), "");
  handle.callBoxed(&args);
  return args;
}

// ---- comparisons (`b` is the CPU kernel's result) ----------------------------------------------
int failures = 0;

void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%s %s (%s)\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);
  failures += ok ? 0 : 1;
}

std::string format(const char* fmt, double a, double b) {
  char text[96];
  std::snprintf(text, sizeof(text), fmt, a, b);
  return text;
}

// max |a - b| / max(|b|, 1e-12), elementwise (python_tests/helpers.py rel_err).
void check_close(const std::string& name, const at::Tensor& a, const at::Tensor& b, double tol = 1e-4) {
  const at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  const double err = x.sizes() == y.sizes() ? ((x - y).abs() / y.abs().clamp_min(1e-12)).max().item<double>() : 1e300;
  report(err <= tol, name, format("max rel err %.2e <= %.0e", err, tol));
}

// ||a - b|| <= tol ||b|| + 1e-12 (a zero gradient must be zero up to rounding).
void check_grad(const std::string& name, const at::Tensor& a, const at::Tensor& b, double tol = 1e-3) {
  const at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  const double ref = y.norm().item<double>();
  const double err = x.sizes() == y.sizes() ? (x - y).norm().item<double>() : 1e300;
  report(err <= tol * ref + 1e-12, name, format("||a - b|| %.2e, ||b|| %.2e", err, ref));
}

void check_equal(const std::string& name, const at::Tensor& a, const at::Tensor& b) {
  report(a.sizes() == b.sizes() && at::equal(a, b), name, "equal");
}

// Same partition of the points of every row of a and b [rows, n] (label ids may differ).
void check_partition(const std::string& name, const at::Tensor& a, const at::Tensor& b) {
  bool ok = a.sizes() == b.sizes();
  for (int64_t r = 0; ok && r < a.size(0); ++r) {
    const at::Tensor x = a[r], y = b[r];
    const int64_t pairs = std::get<0>(at::_unique(x * (y.max().item<int64_t>() + 1) + y)).numel();
    ok = pairs == std::get<0>(at::_unique(x)).numel() && pairs == std::get<0>(at::_unique(y)).numel();
  }
  report(ok, name, "same partition");
}

// Runs one group of checks and prints its time; an exception is a failure of the group.
void run(const char* name, const std::function<void()>& body) {
  const auto start = std::chrono::steady_clock::now();
  try {
    body();
  } catch (const std::exception& e) {
    report(false, name, std::string("exception: ") + e.what());
  }
  std::printf("  %s: %.1f s\n", name, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

// Clear clusters: [P, M, d] points of `k` well separated centres per problem (+ 0.01 noise).
at::Tensor clustered(int64_t P, int64_t M, int64_t d, int64_t k) {
  const at::Tensor centres = at::randn({P, k, d});
  const at::Tensor labels = at::remainder(at::arange(M), k).expand({P, M});
  const at::Tensor index = labels.unsqueeze(-1).expand({P, M, d});
  return centres.gather(1, index) + 0.01 * at::randn({P, M, d});
}

// ---- the ops -----------------------------------------------------------------------------------
void check_kmeans() {
  const at::Tensor x = clustered(2, 40, 12, 5);  // [P=2, M=40, d=12], 5 clusters per problem
  for (const char* seeding : {"greedy", "d2"}) {
    const auto run_on = [&](const char* ns) { return call(ns, "kmeans", {x, 5, 20, 1e-4, 2, seeding, 3}); };
    const Values emu = run_on("sdd_emu"), cpu = run_on("sdd");  // (centroids [2,5,12], labels [2,40], inertia [2])
    const std::string tag = std::string("kmeans[") + seeding + "]";
    check_partition(tag + ".labels", emu[1].toTensor(), cpu[1].toTensor());
    check_close(tag + ".inertia", emu[2].toTensor(), cpu[2].toTensor());
  }
}

// labels [P, M] in [0, 3) with a one-point cluster 3 in every problem and an empty cluster 2 in problem 1.
at::Tensor labels_with_edge_clusters(int64_t P, int64_t M) {
  at::Tensor labels = at::randint(0, 3, {P, M});
  labels.select(0, 1).clamp_max_(1);
  labels.select(1, 0).fill_(3);
  return labels;
}

void check_cluster_singular_sum(int64_t M, int64_t d) {  // x [P=2, M, d]
  const std::string tag = "cluster_singular_sum[M=" + std::to_string(M) + ",d=" + std::to_string(d) + "]";
  const at::Tensor x = at::randn({2, M, d}), labels = labels_with_edge_clusters(2, M);
  const Values emu = call("sdd_emu", "cluster_singular_sum", {x, labels, 4});  // (values [2,4], counts [2,4])
  const Values cpu = call("sdd", "cluster_singular_sum", {x, labels, 4});
  check_close(tag + ".values", emu[0].toTensor(), cpu[0].toTensor());
  check_equal(tag + ".counts", emu[1].toTensor(), cpu[1].toTensor());
  const at::Tensor grad = at::randn({2, 4}, at::kDouble);
  const at::Tensor xd = x.to(at::kDouble);
  check_grad(tag + "_backward", call("sdd_emu", "cluster_singular_sum_backward", {grad, xd, labels, 4})[0].toTensor(),
             call("sdd", "cluster_singular_sum_backward", {grad, xd, labels, 4})[0].toTensor());
}

void check_effective_rank(int64_t Q, int64_t R, int64_t d) {  // y [Q, R, d]
  const std::string tag = "effective_rank[R=" + std::to_string(R) + ",d=" + std::to_string(d) + "]";
  const at::Tensor y = at::randn({Q, R, d});
  check_close(tag, call("sdd_emu", "effective_rank", {y})[0].toTensor(),
              call("sdd", "effective_rank", {y})[0].toTensor());
  const at::Tensor grad = at::randn({Q});
  check_grad(tag + "_backward", call("sdd_emu", "effective_rank_backward", {grad, y})[0].toTensor(),
             call("sdd", "effective_rank_backward", {grad, y})[0].toTensor());
}

void check_inter_cluster_distance() {
  // x [P=2, M=20, d=7], centroids [2, k=10, 7] (more than one distance chunk), labels [2, 20]
  const at::Tensor x = at::randn({2, 20, 7}), centroids = at::randn({2, 10, 7});
  const at::Tensor labels = at::randint(0, 10, {2, 20});
  check_close("inter_cluster_distance", call("sdd_emu", "inter_cluster_distance", {x, centroids, labels})[0].toTensor(),
              call("sdd", "inter_cluster_distance", {x, centroids, labels})[0].toTensor());
  const at::Tensor grad = at::randn({2});
  const Values emu = call("sdd_emu", "inter_cluster_distance_backward", {grad, x, centroids, labels});
  const Values cpu = call("sdd", "inter_cluster_distance_backward", {grad, x, centroids, labels});
  check_grad("inter_cluster_distance_backward.x", emu[0].toTensor(), cpu[0].toTensor());
  check_grad("inter_cluster_distance_backward.centroids", emu[1].toTensor(), cpu[1].toTensor());
}

// dse_forward / dse_backward with local_k=3, global_k=4, group=2, normalize; feats [B, N=12, d=10].
// Given labels: local [B, 12] in [0, 3), global [ceil(B/2), 24] in [0, 4) with cluster 3 empty in
// group 0. Without them the ops run their own k-means (then labels: same partition).
void check_dse(const std::string& tag, const at::Tensor& feats, bool given_labels) {
  const int64_t B = feats.size(0), N = feats.size(1), G = (B + 1) / 2;
  c10::IValue local, global;
  if (given_labels) {
    local = at::randint(0, 3, {B, N});
    const at::Tensor labels = at::randint(0, 4, {G, 2 * N});
    labels[0].clamp_max_(2);
    global = labels;
  }
  const auto forward = [&](const char* ns) {  // (values [5], local, global, centroids, other, perm)
    return call(ns, "dse_forward", {feats, 3, 4, 2, true, 20, 1e-4, 1, "greedy", 0, local, global});
  };
  const Values emu = forward("sdd_emu"), cpu = forward("sdd");
  check_close(tag + ".values", emu[0].toTensor(), cpu[0].toTensor());
  if (given_labels) {
    check_equal(tag + ".other", emu[4].toTensor(), cpu[4].toTensor());
  } else {
    check_partition(tag + ".local_labels", emu[1].toTensor(), cpu[1].toTensor());
    check_partition(tag + ".global_labels", emu[2].toTensor(), cpu[2].toTensor());
  }
  check_equal(tag + ".perm", emu[5].toTensor(), cpu[5].toTensor());
  const at::Tensor grad = at::randn({5});
  const auto backward = [&](const char* ns, const Values& out) {
    return call(ns, "dse_backward", {grad, out[0], feats, out[1], out[2], out[3], out[4], out[5], 3, 4, 2, true})[0];
  };
  check_grad(tag + "_backward", backward("sdd_emu", emu).toTensor(), backward("sdd", cpu).toTensor());
}

// scores, targets, weight scale [A=3, C] (C = 300: two shared-memory tiles of 256, the second
// partial), targets quantised to tenths (ties); anchor 2 has no weight (targets under theta).
void check_continuous_ap_loss(int64_t C) {
  const std::string tag = "continuous_ap_loss[C=" + std::to_string(C) + "]";
  const at::Tensor s = at::rand({3, C}, at::kDouble) * 2 - 1;
  at::Tensor t = at::round(at::rand({3, C}, at::kDouble) * 10) / 10;
  t[2].mul_(0.2);
  const at::Tensor scale = at::where(at::rand({3, C}) < 0.3, 0.1, 1.0).to(at::kDouble);
  const auto forward = [&](const char* ns) {
    return call(ns, "continuous_ap_loss", {s, t, scale, 0.3, 1.5, 0.2, false, "pairwise"})[0].toTensor();
  };
  check_close(tag, forward("sdd_emu"), forward("sdd"), 1e-10);
  const at::Tensor grad = at::randn({3}, at::kDouble);
  const auto backward = [&](const char* ns) {
    return call(ns, "continuous_ap_loss_backward", {grad, s, t, scale, 0.3, 1.5, 0.2, false, "pairwise"})[0]
        .toTensor();
  };
  check_grad(tag + "_backward", backward("sdd_emu"), backward("sdd"), 1e-9);
}

}  // namespace

int main() {
  at::set_num_threads(1);  // the emulator's threads are the only ones (ThreadSanitizer)
  at::manual_seed(0);
  run("kmeans", check_kmeans);
  run("cluster_singular_sum", [] { check_cluster_singular_sum(24, 6); });   // covariance side (d < M)
  run("cluster_singular_sum", [] { check_cluster_singular_sum(12, 20); });  // Gram side (M < d)
  run("effective_rank", [] { check_effective_rank(3, 5, 12); });
  run("effective_rank", [] { check_effective_rank(1, 65, 70); });  // 65 x 65 Gram: past kSharedMatrixCap (64)
  run("inter_cluster_distance", check_inter_cluster_distance);
  run("dse", [] { check_dse("dse[B=4]", at::randn({4, 12, 10}), true); });
  run("dse", [] { check_dse("dse[B=5 ragged]", at::randn({5, 12, 10}), true); });  // last group: 1 image
  run("dse", [] { check_dse("dse[own k-means]", clustered(4, 12, 10, 3), false); });
  run("dse", [] { check_dse("dse[collapsed]", at::ones({4, 12, 10}) + 1e-9 * at::randn({4, 12, 10}), false); });
  run("continuous_ap_loss", [] { check_continuous_ap_loss(300); });
  std::printf("%s: %d check(s) failed\n", failures == 0 ? "emulator_check PASSED" : "emulator_check FAILED", failures);
  return failures == 0 ? 0 : 1;
}
