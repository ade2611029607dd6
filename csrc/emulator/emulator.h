// CPU block emulator: runs the kernel bodies of csrc/kernels/ on the CPU with the same grid,
// block and shared-memory sizes as the GPU launch (csrc/cuda/launch.cuh), so their indexing,
// barriers and shared memory are exercised by the tests on machines without a GPU.
//
// One std::thread per CUDA thread of a block; blocks run one after another on the same
// threads. __syncthreads is a std::barrier over the block, warp shuffles exchange through a
// slot per thread between two barriers of the warp. Shared memory is a heap buffer of exactly
// the launch's size (AddressSanitizer catches an index past it), filled with 0xFF bytes
// before every block (a read of a slot no thread wrote gives NaN / -1, not a lucky zero).
// Under ThreadSanitizer a missing barrier between a shared-memory write and another thread's
// read is reported as a data race.
#pragma once

#include <barrier>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <c10/core/Device.h>

#include "../kernels/block.h"

namespace sdd {
namespace emulator {

// What the threads of one emulated launch share.
struct LaunchState {
  explicit LaunchState(int64_t shared_bytes)
      : block_barrier(kernels::kThreads), shared(static_cast<size_t>(shared_bytes)), slots(kernels::kThreads) {
    for (int w = 0; w < kernels::kThreads / kernels::kWarp; ++w) {
      warp_barriers.push_back(std::make_unique<std::barrier<>>(kernels::kWarp));
    }
    poison_shared();
  }
  void poison_shared() {
    if (!shared.empty()) std::memset(shared.data(), 0xFF, shared.size());
  }

  std::barrier<> block_barrier;
  std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
  std::vector<unsigned char> shared;
  std::vector<uint64_t> slots;  // one shuffle slot per thread
};

// The Block of csrc/kernels/block.h for one emulated thread.
class EmuBlock {
 public:
  EmuBlock(LaunchState& state, int thread, int64_t block_x, int64_t block_y, int64_t blocks_x)
      : state_(state), thread_(thread), block_x_(block_x), block_y_(block_y), blocks_x_(blocks_x) {}

  int thread() const { return thread_; }
  int threads() const { return kernels::kThreads; }
  int block_x() const { return static_cast<int>(block_x_); }
  int block_y() const { return static_cast<int>(block_y_); }
  int blocks_x() const { return static_cast<int>(blocks_x_); }
  void sync() { state_.block_barrier.arrive_and_wait(); }
  unsigned char* shared_bytes() { return state_.shared.empty() ? nullptr : state_.shared.data(); }

  template <class T>
  T shfl_xor(T v, int mask) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles move at most 8 bytes");
    const int lane = thread_ % kernels::kWarp, base = thread_ - lane;
    std::barrier<>& warp = *state_.warp_barriers[thread_ / kernels::kWarp];
    std::memcpy(&state_.slots[thread_], &v, sizeof(T));
    warp.arrive_and_wait();
    T out;
    std::memcpy(&out, &state_.slots[base + (lane ^ mask)], sizeof(T));
    warp.arrive_and_wait();  // no lane overwrites its slot before every partner has read it
    return out;
  }

 private:
  LaunchState& state_;
  int thread_;
  int64_t block_x_, block_y_, blocks_x_;
};

struct EmuBackend {
  struct Guard {  // the emulator runs on the CPU: no device to select
    explicit Guard(const c10::Device&) {}
  };

  // Runs Kernel::run on every block of `grid`, in order (x fastest), kThreads threads each.
  template <class Kernel>
  static void launch(kernels::Grid grid, int64_t shared_bytes, const typename Kernel::Args& args) {
    if (grid.x <= 0 || grid.y <= 0) return;
    LaunchState state(shared_bytes);
    const int64_t blocks = grid.x * grid.y;
    std::vector<std::thread> threads;
    threads.reserve(kernels::kThreads);
    for (int t = 0; t < kernels::kThreads; ++t) {
      threads.emplace_back([&state, &args, grid, blocks, t] {
        for (int64_t block = 0; block < blocks; ++block) {
          EmuBlock b(state, t, block % grid.x, block / grid.x, grid.x);
          Kernel::run(b, args);
          state.block_barrier.arrive_and_wait();  // the block is done
          if (t == 0) state.poison_shared();
          state.block_barrier.arrive_and_wait();  // the next block starts on fresh shared memory
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
};

}  // namespace emulator
}  // namespace sdd
