// A growable array of plain values in anonymous mappings of its own, never in
// malloc's heap: the reachability scan (tracker/reach.h) uses it both in the
// snapshot, which must not touch the host's malloc, and in the watchdog, to
// keep its copies of handle addresses in memory the scan is told to skip
// (range()).
//
// Thread safety: none (one owner). Grows by doubling into a new mapping; the
// old one is unmapped.
#ifndef LEAKWATCH_TRACKER_MAPPED_VECTOR_H_
#define LEAKWATCH_TRACKER_MAPPED_VECTOR_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace leakwatch {

template <typename T>
class MappedVector {
 public:
  // Room for `n` values (size unchanged); false if memory cannot be had.
  bool reserve(size_t n) {
    if (n <= capacity_) return true;
    size_t capacity = capacity_ == 0 ? kPage / sizeof(T) : capacity_ * 2;
    while (capacity < n) capacity *= 2;
    void* p = mmap(nullptr, capacity * sizeof(T), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    if (size_ > 0) std::memcpy(p, data_, size_ * sizeof(T));
    if (data_ != nullptr) munmap(data_, capacity_ * sizeof(T));
    data_ = static_cast<T*>(p);
    capacity_ = capacity;
    return true;
  }
  bool push_back(const T& v) {
    if (size_ == capacity_ && !reserve(size_ + 1)) return false;
    data_[size_++] = v;
    return true;
  }
  // To at most the capacity (reserve first).
  void resize(size_t n) { size_ = n <= capacity_ ? n : capacity_; }
  T& back() { return data_[size_ - 1]; }
  void pop_back() { --size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }
  size_t size() const { return size_; }
  T* data() { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  // The whole mapping, [begin, end) in bytes (empty before the first value).
  void range(uintptr_t* begin, uintptr_t* end) const {
    *begin = reinterpret_cast<uintptr_t>(data_);
    *end = *begin + capacity_ * sizeof(T);
  }

 private:
  static constexpr size_t kPage = 4096;
  T* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_MAPPED_VECTOR_H_
