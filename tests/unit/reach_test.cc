// Tests for tracker/reach.h: which handles are reachable, lost or indirectly
// lost, in this very process. The "handles" are blocks of memory; where a
// test must remember one without keeping a pointer to it, it keeps the
// address disguised (Hide) — as the agent's own table is excluded from the
// scan, the keys handed to ScanReachability live in excluded memory here.
//
// Each test expects a process of its own, as ctest runs them
// (gtest_discover_tests): after a long history of allocations in one process
// (the whole binary run at once), a block handed out again often still holds
// a pointer of its former life that happens to equal a new block's address —
// the stale copy the README lists among the scan's limits — and a lost block
// then looks reachable.

#include "tracker/reach.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace leakwatch {
namespace {

constexpr uintptr_t kMask = 0x5a5a5a5a5a5a5a5a;
uintptr_t Hide(const void* p) { return reinterpret_cast<uintptr_t>(p) ^ kMask; }

// The scan's input, in a mapping of its own that the scan must not read.
class Keys {
 public:
  Keys() {
    void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    keys_ = static_cast<uintptr_t*>(p);
  }
  ~Keys() { munmap(keys_, kBytes); }
  // Returns the index the verdict will have once sorted (call Sort first).
  void Add(uintptr_t hidden) { keys_[n_++] = hidden ^ kMask; }
  std::vector<Reach> Scan(ReachStats* stats = nullptr) {
    std::vector<uintptr_t> hidden_order(n_);
    for (size_t i = 0; i < n_; ++i) hidden_order[i] = keys_[i] ^ kMask;
    // Sort in place (the keys stay in the excluded mapping).
    std::sort(keys_, keys_ + n_);
    std::vector<Reach> sorted(n_);
    MemoryRange exclude = {reinterpret_cast<uintptr_t>(keys_),
                           reinterpret_cast<uintptr_t>(keys_) + kBytes};
    ReachStats local;
    ReachStats* st = stats != nullptr ? stats : &local;
    bool made =
        ScanReachability(keys_, n_, sorted.data(), &exclude, 1, 30000, st);
    EXPECT_TRUE(made) << st->failure;
    // Back to the order of Add.
    std::vector<Reach> out(n_);
    for (size_t i = 0; i < n_; ++i) {
      uintptr_t key = hidden_order[i] ^ kMask;
      size_t at = std::lower_bound(keys_, keys_ + n_, key) - keys_;
      out[i] = sorted[at];
      hidden_order[i] = 0;
    }
    return out;
  }

 private:
  static constexpr size_t kBytes = 1 << 20;
  uintptr_t* keys_ = nullptr;
  size_t n_ = 0;
};

// A handle: a heap block of the size of a small client struct.
void* NewHandle() {
  void* p = malloc(200);
  std::memset(p, 0x11, 200);
  return p;
}

void* volatile g_global_handle;
struct Service {
  void* conn;
  int state;
};
Service* volatile g_service;
struct Embedding {
  char header[40];
  char conn[200];  // a MYSQL the program initialised in place
};
Embedding g_embedded;
__thread void* t_thread_handle;

TEST(ReachTest, GlobalsAndHeapStructsAreReachable) {
  Keys keys;
  void* a = NewHandle();
  g_global_handle = a;
  keys.Add(Hide(a));
  a = nullptr;
  g_service = static_cast<Service*>(malloc(sizeof(Service)));
  g_service->conn = NewHandle();
  keys.Add(Hide(g_service->conn));
  keys.Add(Hide(&g_embedded.conn));
  std::vector<Reach> v = keys.Scan();
  EXPECT_EQ(v[0], Reach::kReachable);
  EXPECT_EQ(v[1], Reach::kReachable);
  EXPECT_EQ(v[2], Reach::kReachable);
  free(g_global_handle);
  free(g_service->conn);
  free(g_service);
}

TEST(ReachTest, OverwrittenLastPointerIsLost) {
  Keys keys;
  g_global_handle = NewHandle();
  keys.Add(Hide(g_global_handle));
  g_global_handle = nullptr;  // the only copy, overwritten
  std::vector<Reach> v = keys.Scan();
  EXPECT_EQ(v[0], Reach::kLost);
}

// Makes `n` requests with a connection each, then frees them all (out of
// line: no plain address stays in the test's frame).
template <typename Request>
[[gnu::noinline]] void MakeAndFreeRequests(Keys* keys, int n) {
  std::vector<Request*> requests(n);
  for (Request*& r : requests) {
    r = static_cast<Request*>(malloc(sizeof(Request)));
    r->conn = NewHandle();
    keys->Add(Hide(r->conn));
  }
  for (Request*& r : requests) {
    free(r);
    r = nullptr;
  }
}

[[gnu::noinline]] void Scribble();

TEST(ReachTest, FreedWithTheStructThatHeldItIsLost) {
  Keys keys;
  // Request structs with the connection past the words free overwrites;
  // all made, then all freed: enough of one size to fill the tcache and
  // reach the other bins. (A size nothing else here asks for: a block
  // handed out again before the scan would still hold its old pointer.)
  struct Request {
    char id[16];
    void* conn;
    char rest[328];
  };
  MakeAndFreeRequests<Request>(&keys, 12);
  Scribble();
  std::vector<Reach> v = keys.Scan();
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i], Reach::kLost) << i;
  }
}

TEST(ReachTest, CppContainersAreReachable) {
  Keys keys;
  static std::vector<void*>* pool = new std::vector<void*>();
  for (int i = 0; i < 5; ++i) {
    pool->push_back(NewHandle());
    keys.Add(Hide(pool->back()));
  }
  auto owned = std::make_unique<std::vector<std::unique_ptr<char[]>>>();
  owned->emplace_back(new char[300]);
  keys.Add(Hide(owned->back().get()));
  static std::unique_ptr<std::vector<std::unique_ptr<char[]>>>* keep =
      new std::unique_ptr<std::vector<std::unique_ptr<char[]>>>(
          std::move(owned));
  std::vector<Reach> v = keys.Scan();
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(v[i], Reach::kReachable) << i;
  }
  (void)keep;
}

// A block above malloc's mmap threshold, known only hidden.
[[gnu::noinline]] uintptr_t NewLargeHidden() {
  void* volatile p = malloc(4 << 20);
  std::memset(p, 0, 4 << 20);
  return Hide(p);
}

TEST(ReachTest, LargeBlocksOfTheirOwnMapping) {
  Keys keys;
  // Above malloc's mmap threshold: a chunk of its own mapping.
  void* big = malloc(4 << 20);
  std::memset(big, 0, 4 << 20);
  g_global_handle = big;
  keys.Add(Hide(big));
  keys.Add(NewLargeHidden());
  Scribble();
  std::vector<Reach> v = keys.Scan();
  EXPECT_EQ(v[0], Reach::kReachable);
  EXPECT_EQ(v[1], Reach::kLost);
  free(g_global_handle);
}

TEST(ReachTest, OnlyALostHandleRefersToItMeansIndirectlyLost) {
  Keys keys;
  // A result that points at its connection (MYSQL_RES::handle): both lost,
  // the connection only through the result.
  struct Result {
    char fields[64];
    void* handle;
  };
  void* conn = NewHandle();
  auto* res = static_cast<Result*>(malloc(sizeof(Result)));
  res->handle = conn;
  keys.Add(Hide(res));
  keys.Add(Hide(conn));
  res = nullptr;
  conn = nullptr;
  std::vector<Reach> v = keys.Scan();
  EXPECT_EQ(v[0], Reach::kLost);
  EXPECT_EQ(v[1], Reach::kIndirectlyLost);
}

TEST(ReachTest, InteriorPointersReach) {
  Keys keys;
  char* block = static_cast<char*>(NewHandle());
  g_global_handle = block + 16;  // like a PyObject after its GC header
  keys.Add(Hide(block));
  std::vector<Reach> v = keys.Scan();
  EXPECT_EQ(v[0], Reach::kReachable);
  free(block);
}

// A pointer to the end of a block (stdio keeps one: _IO_buf_end) lands on
// the header of the block after it: it reaches the first block, not the next.

// Frees a block known only hidden (out of line: the caller's frame never
// holds the plain address, not even across the scan).
[[gnu::noinline]] void FreeHidden(uintptr_t hidden) {
  free(reinterpret_cast<void*>(hidden ^ kMask));
}

// Two blocks next to each other (tried a few times: malloc decides; blocks
// too large for its caches come from the top of the heap, one after the
// other); the second's address is only kept hidden.
constexpr size_t kAdjacentBytes = 4088;  // a 4096-byte chunk
[[gnu::noinline]] char* AdjacentBlocks(uintptr_t* hidden_next) {
  std::vector<void*> spare;
  char* first = nullptr;
  for (int i = 0; i < 64 && first == nullptr; ++i) {
    auto* a = static_cast<char*>(malloc(kAdjacentBytes));
    auto* b = static_cast<char*>(malloc(kAdjacentBytes));
    // Reached, `a` is scanned: no stale pointer of an earlier test in it.
    std::memset(a, 0, kAdjacentBytes);
    std::memset(b, 0x11, kAdjacentBytes);
    if (b == a + 4096) {
      first = a;
      *hidden_next = Hide(b);
    } else {
      spare.push_back(a);
      spare.push_back(b);
    }
  }
  for (void*& p : spare) {
    free(p);
    p = nullptr;
  }
  return first;
}

TEST(ReachTest, APointerPastTheEndOfABlockDoesNotReachTheNextOne) {
  uintptr_t hidden_next = 0;
  char* first = AdjacentBlocks(&hidden_next);
  ASSERT_NE(first, nullptr) << "no two adjacent blocks";
  // One past the end of `first`'s bytes: the next block's header.
  g_global_handle = first + kAdjacentBytes;
  Keys keys;
  keys.Add(Hide(first));
  keys.Add(hidden_next);
  first = nullptr;
  Scribble();
  std::vector<Reach> v = keys.Scan();
  EXPECT_EQ(v[0], Reach::kReachable);
  EXPECT_EQ(v[1], Reach::kLost);
  free(static_cast<char*>(g_global_handle) - kAdjacentBytes);
  g_global_handle = nullptr;
  FreeHidden(hidden_next);
}

// Another thread's stack and TLS: live frames count, returned ones do not.
struct ThreadCase {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  int stage = 0;  // 1: handles made, 2: may finish
  uintptr_t on_stack = 0, in_tls = 0, dropped = 0;
};

// An error path: the handle was made, the call failed, the pointer dropped.
[[gnu::noinline]] int OpenAndFail(ThreadCase* c) {
  void* volatile conn = NewHandle();
  c->dropped = Hide(conn);
  return -1;  // forgot to close it
}

[[gnu::noinline]] void Scribble() {
  volatile char noise[64];
  std::memset(const_cast<char*>(noise), 0, sizeof noise);
}

void* ThreadMain(void* arg) {
  auto* c = static_cast<ThreadCase*>(arg);
  void* volatile local = NewHandle();
  t_thread_handle = NewHandle();
  c->on_stack = Hide(local);
  c->in_tls = Hide(t_thread_handle);
  OpenAndFail(c);
  pthread_mutex_lock(&c->mu);
  c->stage = 1;
  pthread_cond_broadcast(&c->cv);
  while (c->stage != 2) pthread_cond_wait(&c->cv, &c->mu);
  pthread_mutex_unlock(&c->mu);
  free(local);
  free(t_thread_handle);
  return nullptr;
}

TEST(ReachTest, OtherThreadsStacksAndTls) {
  ThreadCase c;
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, &ThreadMain, &c), 0);
  pthread_mutex_lock(&c.mu);
  while (c.stage != 1) pthread_cond_wait(&c.cv, &c.mu);
  pthread_mutex_unlock(&c.mu);
  Keys keys;
  keys.Add(c.on_stack);
  keys.Add(c.in_tls);
  keys.Add(c.dropped);
  std::vector<Reach> v = keys.Scan();
  EXPECT_EQ(v[0], Reach::kReachable);
  EXPECT_EQ(v[1], Reach::kReachable);
  EXPECT_EQ(v[2], Reach::kLost);
  pthread_mutex_lock(&c.mu);
  c.stage = 2;
  pthread_cond_broadcast(&c.cv);
  pthread_mutex_unlock(&c.mu);
  pthread_join(t, nullptr);
}

// Threads busy allocating and freeing while the scan runs: it finishes, the
// process goes on, and a handle they hold in a global stays reachable.
TEST(ReachTest, BusyThreadsDuringTheScan) {
  std::atomic<bool> stop{false};
  std::vector<pthread_t> threads(8);
  for (pthread_t& t : threads) {
    pthread_create(
        &t, nullptr,
        [](void* arg) -> void* {
          auto* stop = static_cast<std::atomic<bool>*>(arg);
          while (!stop->load()) {
            void* p = malloc(64);
            std::memset(p, 1, 64);
            free(p);
          }
          return nullptr;
        },
        &stop);
  }
  Keys keys;
  g_global_handle = NewHandle();
  keys.Add(Hide(g_global_handle));
  ReachStats stats;
  for (int round = 0; round < 5; ++round) {
    std::vector<Reach> v = keys.Scan(&stats);
    EXPECT_EQ(v[0], Reach::kReachable);
    EXPECT_GE(stats.threads, 8u);
  }
  stop = true;
  for (pthread_t& t : threads) pthread_join(t, nullptr);
  free(g_global_handle);
}

}  // namespace
}  // namespace leakwatch
