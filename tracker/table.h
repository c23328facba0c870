// The live-handle table: a fixed number of shards, each a small open-addressing
// hash map (linear probing, backward-shift deletion) guarded by its own mutex.
// The shard is picked from high bits of the key's hash, the slot from low bits,
// so there is no global lock on the acquire/release path.
//
// Thread safety: every public method may be called from any thread, from a hook.
// Memory: records are stored inline (sizeof(Record) bytes), tables grow by
// doubling at 50% load. If growing fails (out of memory) the insert is dropped
// and counted in dropped().
#ifndef LEAKWATCH_TRACKER_TABLE_H_
#define LEAKWATCH_TRACKER_TABLE_H_

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "tracker/kinds.h"

namespace leakwatch {

enum RecordFlags : uint16_t {
  kReportedLive = 1 << 0,  // a live warning was written for this record
  kInherited = 1 << 1,     // acquired in the parent before fork()
  kInCall = 1 << 2,        // a blocking call on the handle is in progress
  kPinsParent = 1 << 3,    // keeps its parent busy until released (an
                           // unbuffered result pins its connection)
  kExited = 1 << 4,        // thread: has exited (active_ns = exit time)
  kDetached = 1 << 5,      // thread: detached (released when it exits)
  kIgnored = 1 << 6,       // the program said it keeps this on purpose
                           // (leakwatch_ignore): never reported
};

struct Record {
  uintptr_t key = 0;            // the handle's address; 0 = empty slot
  const KindDesc* kind = nullptr;
  int64_t acquired_ns = 0;      // NowNs() at acquisition
  int64_t active_ns = 0;        // last activity (connections), else acquired_ns
  uintptr_t parent = 0;         // e.g. the connection a result came from
  uint32_t stack_id = 0;        // in the stack depot; 0 = no stack
  Identity identity;            // for a result: its connection's
  uint32_t tid = 0;             // acquiring thread (kernel tid)
  uint16_t flags = 0;
  uint32_t query_id = 0;        // string-depot id of the query behind the
                                // handle (a result's SQL, a connection's last)
  uint32_t serial = 0;          // set by the hooks to tell reuses of a key
                                // apart (threads: pthread_t values recur)
  uintptr_t code = 0;           // a code address the handle is about (a
                                // thread's start routine); 0 = none
};

// A record as it was released, kept a while to explain a second release or a
// use after close.
struct ReleasedRecord {
  uintptr_t key = 0;
  const KindDesc* kind = nullptr;
  uint32_t acquire_stack_id = 0;
  uint32_t release_stack_id = 0;
  uint32_t released_by = 0;  // tid
  int64_t acquired_ns = 0;
  int64_t released_ns = 0;
};

// Locks `mu`, or returns false once `give_up` is true while waiting (the
// watchdog at exit: the lock may belong to a thread that will never run
// again).
bool LockUnlessGivenUp(pthread_mutex_t& mu, const std::atomic<bool>& give_up);

class ShardedTable {
 public:
  // Recently released records kept per shard (a ring; 4,096 in all).
  static constexpr int kRecentPerShard = 64;

  static constexpr int kShardBits = 6;
  static constexpr int kShards = 1 << kShardBits;

  constexpr ShardedTable() = default;
  ShardedTable(const ShardedTable&) = delete;
  ShardedTable& operator=(const ShardedTable&) = delete;

  // Inserts `record` (record.key != 0). If the key is already present (an
  // address reused without a release we saw) the old record is replaced and
  // copied to `*replaced`, and true is returned; it is counted as replaced,
  // or as released if `replace_is_release` (the key can only have been
  // reused after a release that has not reached the table yet).
  bool Insert(const Record& record, Record* replaced,
              bool replace_is_release = false);

  // Removes the record for `key`; copies it to `*removed` and returns true if
  // it was present.
  bool Erase(uintptr_t key, Record* removed);

  // Erase that also remembers the record among the recently released, with
  // the stack that released it.
  bool EraseAndRemember(uintptr_t key, Record* removed,
                        uint32_t release_stack_id, uint32_t released_by,
                        int64_t now_ns);

  // The most recent release of `key` still remembered; false if none.
  bool FindReleased(uintptr_t key, ReleasedRecord* out);

  // Runs `fn` on the record for `key` under its shard's lock; false if absent.
  // `fn` must not call back into the table.
  template <typename Fn>
  bool Update(uintptr_t key, Fn&& fn);

  // Runs `fn` on the record for `key` under its shard's lock; if `fn`
  // returns true the record is removed (counted as released) and copied to
  // `*removed`. Returns false if `key` is absent. `fn` must not call back
  // into the table.
  template <typename Fn>
  bool Mutate(uintptr_t key, Fn&& fn, Record* removed, bool* erased);

  // Visits every record, shard by shard, under each shard's lock. `fn` must not
  // call back into the table. If `lock_deadline_ns` > 0 (CLOCK_REALTIME), a
  // shard whose lock cannot be had by then is skipped and counted in the
  // return value (the number of shards skipped). Without a deadline, a
  // shard is skipped (and counted) once `*give_up` becomes true while its
  // lock is awaited.
  int ForEach(const std::function<void(Record&)>& fn,
              int64_t lock_deadline_ns = 0,
              const std::atomic<bool>* give_up = nullptr);

  // Per-kind totals of inserts, erases and replacements since start; takes
  // no lock (values may be slightly stale while other threads run).
  struct Totals {
    uint64_t acquired[kMaxKinds] = {};
    uint64_t released[kMaxKinds] = {};
    uint64_t replaced[kMaxKinds] = {};
  };
  Totals GetTotals();

  size_t size() const;          // live records (racy sum, for stats)
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  size_t bytes() const;         // memory held by slot arrays

  // fork(): lock every shard in index order before, unlock after.
  void LockAllForFork();
  void UnlockAllAfterFork();

 private:
  struct alignas(64) Shard {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    // Guarded by mu:
    Record* slots = nullptr;  // capacity entries, power of two
    size_t capacity = 0;
    size_t count = 0;
    // Per-kind totals (by KindDesc::index), kept here rather than in shared
    // atomics so that threads on different shards do not share a cache line.
    // Written under mu with Bump, read without it by GetTotals: relaxed
    // atomic loads and stores on both sides (plain increments under the lock
    // raced with GetTotals' unlocked loads — ThreadSanitizer, issue 6 load
    // run with a busy watchdog). On x86-64 a relaxed load+store is the same
    // mov/add/mov as ++; no locked instruction is needed, the lock already
    // serialises writers.
    uint64_t acquired[kMaxKinds] = {};
    uint64_t released[kMaxKinds] = {};
    uint64_t replaced[kMaxKinds] = {};  // acquired again without a release
    ReleasedRecord recent[kRecentPerShard];  // ring, newest at recent_next-1
    uint32_t recent_next = 0;
  };

  // ++counter for a per-kind total of a shard whose mu is held.
  static void Bump(uint64_t& counter) {
    __atomic_store_n(&counter, __atomic_load_n(&counter, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
  }

  static uint64_t Hash(uintptr_t key) {
    uint64_t h = static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
  }
  Shard& ShardFor(uint64_t hash) { return shards_[hash >> (64 - kShardBits)]; }
  // Index of `key` in `shard`, or of the empty slot where it would go.
  static size_t Probe(const Shard& shard, uintptr_t key, uint64_t hash);
  static Record* FindLocked(Shard& shard, uintptr_t key, uint64_t hash);
  bool GrowLocked(Shard& shard);
  bool EraseImpl(uintptr_t key, Record* removed, bool remember,
                 uint32_t release_stack_id, uint32_t released_by,
                 int64_t now_ns);
  // Removes slot `i` of `shard` (backward-shift deletion); mu held.
  static void EraseSlotLocked(Shard& shard, size_t i);

  Shard shards_[kShards];
  std::atomic<uint64_t> dropped_{0};
};

template <typename Fn>
bool ShardedTable::Update(uintptr_t key, Fn&& fn) {
  uint64_t hash = Hash(key);
  Shard& shard = ShardFor(hash);
  pthread_mutex_lock(&shard.mu);
  Record* r = FindLocked(shard, key, hash);
  if (r != nullptr) fn(*r);
  pthread_mutex_unlock(&shard.mu);
  return r != nullptr;
}

template <typename Fn>
bool ShardedTable::Mutate(uintptr_t key, Fn&& fn, Record* removed,
                          bool* erased) {
  uint64_t hash = Hash(key);
  Shard& shard = ShardFor(hash);
  *erased = false;
  pthread_mutex_lock(&shard.mu);
  Record* r = FindLocked(shard, key, hash);
  if (r != nullptr && fn(*r)) {
    if (removed != nullptr) *removed = *r;
    if (r->kind != nullptr) Bump(shard.released[r->kind->index]);
    EraseSlotLocked(shard, static_cast<size_t>(r - shard.slots));
    *erased = true;
  }
  pthread_mutex_unlock(&shard.mu);
  return r != nullptr;
}

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_TABLE_H_
