// Registers every kernel op of one Backend under a dispatch key of a library namespace: the
// CUDA kernels as sdd's CUDA implementations, the emulated ones as sdd_emu's CPU ones.
#pragma once

#include <torch/library.h>

#include "ap_loss.h"
#include "dse.h"
#include "inter.h"
#include "kmeans.h"
#include "spectra.h"

namespace sdd {
namespace device_ops {

template <class Backend>
void register_kernel_ops(torch::Library& m) {
  m.impl("kmeans", &kmeans_op<Backend>);
  m.impl("cluster_singular_sum", &cluster_singular_sum_op<Backend>);
  m.impl("cluster_singular_sum_backward", &cluster_singular_sum_backward_op<Backend>);
  m.impl("effective_rank", &effective_rank_op<Backend>);
  m.impl("effective_rank_backward", &effective_rank_backward_op<Backend>);
  m.impl("inter_cluster_distance", &inter_cluster_distance_op<Backend>);
  m.impl("inter_cluster_distance_backward", &inter_cluster_distance_backward_op<Backend>);
  m.impl("dse_forward", &dse_forward_op<Backend>);
  m.impl("dse_backward", &dse_backward_op<Backend>);
  m.impl("continuous_ap_loss", &continuous_ap_loss_op<Backend>);
  m.impl("continuous_ap_loss_backward", &continuous_ap_loss_backward_op<Backend>);
}

}  // namespace device_ops
}  // namespace sdd
