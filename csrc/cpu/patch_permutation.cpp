#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

#include "kernels.h"

namespace sdd {
namespace cpu {

// perm[b] sorts Philox keys (seed, image b, patch n); ties keep patch order.
void patch_permutation(int64_t seed, int64_t batch, int64_t patches, int64_t* perm) {
  std::vector<std::pair<uint32_t, int64_t>> keyed(patches);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t n = 0; n < patches; ++n) {
      keyed[n] = {common::random_u32(seed, common::RandomStream::kPatchPermutation, b, n), n};
    }
    std::sort(keyed.begin(), keyed.end());
    for (int64_t n = 0; n < patches; ++n) perm[b * patches + n] = keyed[n].second;
  }
}

}  // namespace cpu
}  // namespace sdd
