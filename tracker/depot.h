// An append-only depot that interns sequences (stacks of return addresses, or
// strings) and hands out small stable ids.
//
//   uint32_t id = depot.Put(data, size);   // same contents -> same id; 0 =
//   none Depot<T>::View v = depot.Get(id);       // valid for the life of the
//   process
//
// Thread safety: Put and Get may be called from any thread, from a hook. Lookup
// of an existing entry takes no lock (chains are published with release
// stores); inserting a new entry takes the depot's mutex. Entries are never
// freed. Put returns 0 (and the caller records "no stack") if memory runs out,
// the depot is full, or an entry is larger than one 64 KiB arena.
//
// Fork: LockForFork/UnlockAfterFork bracket fork() so the insert mutex is never
// held in the child.
#ifndef LEAKWATCH_TRACKER_DEPOT_H_
#define LEAKWATCH_TRACKER_DEPOT_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

namespace leakwatch {

// 64-bit FNV-1a style mix over machine words; good enough to spread stacks.
inline uint64_t HashBytes(const void* data, size_t size) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t h = 0xcbf29ce484222325ull ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < size; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  h ^= h >> 32;
  return h;
}

template <typename T>
class Depot {
 public:
  struct View {
    const T* data = nullptr;
    uint32_t size = 0;
  };

  constexpr Depot() = default;
  Depot(const Depot&) = delete;
  Depot& operator=(const Depot&) = delete;

  uint32_t Put(const T* data, uint32_t size) {
    if (size == 0) return 0;
    uint64_t hash = HashBytes(data, size * sizeof(T));
    std::atomic<Node*>& head = buckets_[hash & (kBuckets - 1)];
    if (Node* n =
            Find(head.load(std::memory_order_acquire), hash, data, size)) {
      return n->id;
    }
    pthread_mutex_lock(&mu_);
    uint32_t id = 0;
    Node* first = head.load(std::memory_order_relaxed);
    if (Node* n = Find(first, hash, data, size)) {
      id = n->id;
    } else if (Node* n = NewNode(data, size)) {
      n->hash = hash;
      n->next = first;
      id = n->id;
      head.store(n, std::memory_order_release);
    }
    pthread_mutex_unlock(&mu_);
    return id;
  }

  // The id of `data` if it is in the depot, else 0; never inserts.
  uint32_t Find(const T* data, uint32_t size) const {
    if (size == 0) return 0;
    uint64_t hash = HashBytes(data, size * sizeof(T));
    const std::atomic<Node*>& head = buckets_[hash & (kBuckets - 1)];
    Node* n = Find(head.load(std::memory_order_acquire), hash, data, size);
    return n != nullptr ? n->id : 0;
  }

  View Get(uint32_t id) const {
    if (id == 0 || id > count_.load(std::memory_order_acquire)) return {};
    Node** chunk = chunks_[(id - 1) / kChunk].load(std::memory_order_acquire);
    if (chunk == nullptr) return {};
    Node* n = chunk[(id - 1) % kChunk];
    return {n->data, n->size};
  }

  uint32_t size() const { return count_.load(std::memory_order_acquire); }

  // Approximate bytes held by entries (for memory accounting).
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

  void LockForFork() { pthread_mutex_lock(&mu_); }
  void UnlockAfterFork() { pthread_mutex_unlock(&mu_); }

 private:
  static constexpr size_t kBuckets = 1 << 14;
  static constexpr uint32_t kChunk = 4096;
  static constexpr uint32_t kMaxChunks = 1024;  // at most ~4M entries

  struct Node {
    Node* next;
    uint64_t hash;
    uint32_t id;
    uint32_t size;
    T data[1];  // really `size` elements
  };

  static Node* Find(Node* n, uint64_t hash, const T* data, uint32_t size) {
    for (; n != nullptr; n = n->next) {
      if (n->hash == hash && n->size == size &&
          std::memcmp(n->data, data, size * sizeof(T)) == 0) {
        return n;
      }
    }
    return nullptr;
  }

  // Called with mu_ held.
  Node* NewNode(const T* data, uint32_t size) {
    uint32_t id = count_.load(std::memory_order_relaxed) + 1;
    uint32_t chunk_index = (id - 1) / kChunk;
    if (chunk_index >= kMaxChunks) return nullptr;
    Node** chunk = chunks_[chunk_index].load(std::memory_order_relaxed);
    if (chunk == nullptr) {
      chunk = new (std::nothrow) Node*[kChunk];
      if (chunk == nullptr) return nullptr;
      chunks_[chunk_index].store(chunk, std::memory_order_release);
      bytes_.fetch_add(kChunk * sizeof(Node*), std::memory_order_relaxed);
    }
    size_t bytes = offsetof(Node, data) + size * sizeof(T);
    void* mem = Allocate(bytes);
    if (mem == nullptr) return nullptr;
    Node* n = static_cast<Node*>(mem);
    n->id = id;
    n->size = size;
    std::memcpy(n->data, data, size * sizeof(T));
    chunk[(id - 1) % kChunk] = n;
    count_.store(id, std::memory_order_release);
    return n;
  }

  // Bump allocation from 64 KiB arenas; called with mu_ held.
  void* Allocate(size_t bytes) {
    bytes = (bytes + 15) & ~size_t{15};
    if (bytes > kArena) return nullptr;
    if (arena_ == nullptr || arena_used_ + bytes > kArena) {
      arena_ = static_cast<char*>(::operator new(kArena, std::nothrow));
      if (arena_ == nullptr) return nullptr;
      arena_used_ = 0;
      bytes_.fetch_add(kArena, std::memory_order_relaxed);
    }
    void* p = arena_ + arena_used_;
    arena_used_ += bytes;
    return p;
  }

  static constexpr size_t kArena = 64 * 1024;

  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;  // guards inserts, arena_
  std::atomic<Node*> buckets_[kBuckets] = {};
  std::atomic<Node**> chunks_[kMaxChunks] = {};
  std::atomic<uint32_t> count_{0};
  std::atomic<size_t> bytes_{0};
  char* arena_ = nullptr;
  size_t arena_used_ = 0;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_DEPOT_H_
