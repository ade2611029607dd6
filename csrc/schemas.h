// The schemas of the kernel ops, in one place: csrc/sdd.cpp defines them in the `sdd`
// namespace, the CPU block emulator's test library (csrc/emulator/emulator_ops.cpp) in
// `sdd_emu`, so the emulated kernels are called exactly as the real ones.
#pragma once

namespace sdd {

inline constexpr const char* kKernelOpSchemas[] = {
    "kmeans(Tensor x, int k, int iters, float tol, int n_init, str seeding, int seed)"
    " -> (Tensor centroids, Tensor labels, Tensor inertia)",
    "cluster_singular_sum(Tensor x, Tensor labels, int k) -> (Tensor values, Tensor counts)",
    "cluster_singular_sum_backward(Tensor grad_values, Tensor x, Tensor labels, int k) -> Tensor",
    "effective_rank(Tensor y) -> Tensor",
    "effective_rank_backward(Tensor grad, Tensor y) -> Tensor",
    "inter_cluster_distance(Tensor x, Tensor centroids, Tensor labels) -> Tensor",
    "inter_cluster_distance_backward(Tensor grad, Tensor x, Tensor centroids, Tensor labels)"
    " -> (Tensor grad_x, Tensor grad_centroids)",
    "dse_forward(Tensor feats, int local_k, int global_k, int group, bool normalize, int iters,"
    " float tol, int n_init, str seeding, int seed, Tensor? local_labels, Tensor? global_labels)"
    " -> (Tensor values, Tensor local_labels, Tensor global_labels, Tensor centroids,"
    " Tensor other, Tensor perm)",
    "dse_backward(Tensor grad, Tensor values, Tensor feats, Tensor local_labels,"
    " Tensor global_labels, Tensor centroids, Tensor other, Tensor perm, int local_k,"
    " int global_k, int group, bool normalize) -> Tensor",
    "continuous_ap_loss(Tensor scores, Tensor targets, Tensor? weight_scale, float theta, float lam,"
    " float tau, bool hard_step, str algorithm) -> Tensor",
    "continuous_ap_loss_backward(Tensor grad, Tensor scores, Tensor targets, Tensor? weight_scale,"
    " float theta, float lam, float tau, bool hard_step, str algorithm) -> Tensor",
};

}  // namespace sdd
