// Containers for the agent's copies of handle addresses (records, notes,
// verdicts) whose memory is zeroed before it goes back to malloc.
//
// Why: the reachability scan (tracker/reach.h) looks for words equal to a
// handle's address in the program's live memory. The agent's own live copies
// are out of its reach (they hang off the agent's globals, which the scan
// skips), but a freed buffer of the agent's is soon handed to the program
// again, uninitialised: a copy of an address left there would make a lost
// handle look reachable — and malloc gives a new handle the address of the
// one just released, so even a copy of a released handle's address counts.
//
// Thread safety: as std::allocator.
#ifndef LEAKWATCH_TRACKER_SCRUB_H_
#define LEAKWATCH_TRACKER_SCRUB_H_

#include <cstddef>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace leakwatch {

template <typename T>
struct ScrubbingAllocator {
  using value_type = T;
  ScrubbingAllocator() = default;
  template <typename U>
  ScrubbingAllocator(const ScrubbingAllocator<U>&) {}  // NOLINT: rebinding
  T* allocate(size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, size_t n) {
    // volatile: the stores must not be dropped as dead before the free.
    volatile unsigned char* bytes = reinterpret_cast<unsigned char*>(p);
    for (size_t i = 0; i < n * sizeof(T); ++i) bytes[i] = 0;
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  bool operator==(const ScrubbingAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const ScrubbingAllocator<U>&) const {
    return false;
  }
};

template <typename T>
using ScrubbedVector = std::vector<T, ScrubbingAllocator<T>>;

template <typename K, typename V>
using ScrubbedMap =
    std::map<K, V, std::less<K>, ScrubbingAllocator<std::pair<const K, V>>>;

template <typename K, typename V>
using ScrubbedHashMap =
    std::unordered_map<K, V, std::hash<K>, std::equal_to<K>,
                       ScrubbingAllocator<std::pair<const K, V>>>;

template <typename K>
using ScrubbedHashSet = std::unordered_set<K, std::hash<K>, std::equal_to<K>,
                                           ScrubbingAllocator<K>>;

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_SCRUB_H_
