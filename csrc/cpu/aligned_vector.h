// std::vector whose storage starts on a 64-byte boundary (a cache line, one AVX-512 vector). The
// lane kernels load and store whole vectors at multiples of their width from a buffer's start: from
// malloc's 16-byte alignment (an mmap'd block starts 16 bytes past a page) every such access would
// straddle two cache lines (the Gram kernel ran 10-25% slower so, on rows in L2).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace sdd {
namespace cpu {

constexpr std::size_t kCacheLine = 64;

template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}  // rebinding, as allocators must allow
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kCacheLine)));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(kCacheLine)); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept { return true; }
};

// A vector of T on cache-line-aligned storage.
template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace cpu
}  // namespace sdd
