// The live-handle table: a fixed number of shards, each guarded by its own
// lock (ShardLock), so there is no global lock on the acquire/release path.
// A shard holds
//   - a pool of records in chunks mapped for the shard (mmap; chunk sizes
//     double: kFirstChunkRecords, as many again, twice as many, ...), never
//     moved or unmapped: a released record goes on the shard's free list and
//     is the next one reused (while its lines are still in cache);
//   - an index over the pool: an open-addressing array (linear probing,
//     backward-shift deletion) of 8-byte slots {32 bits of the key's hash,
//     record number + 1}, grown by doubling at 3/4 load;
//   - per-kind totals and the recently released (kRecentPerShard).
//
// Which shard: a hash of the key's 256 KiB granule (key >> kGranuleBits),
// not of the whole key. Allocators give each thread memory of its own (glibc:
// a heap per arena; thread stacks, where pthread_t points, lie apart), so
// threads working on their own handles mostly stay on shards of their own,
// and do not pull each other's locks, index and pool lines across cores at
// every call (a granule must be large enough that a thread holding a
// thousand handles still keeps to a few shards). A program's handles still
// spread over many shards once they take a few MiB (the watchdog's scan locks
// one shard at a time).
//
// Thread safety: every public method may be called from any thread, from a
// hook.
//
// Memory per live record: sizeof(Record) in the pool and 8 bytes / load in
// the index (10.7-21.3 bytes). Only the pages of a chunk that records
// have reached are resident, so a shard's last chunk costs at most a page
// beyond its records. The pool, and an index of a page or more, are mapped
// rather than taken from malloc: among the program's own blocks they would
// keep glibc from trimming its heap once the program freed them. After a
// burst, Shrink (the watchdog) gives the pages above each shard's highest
// live record back, and shrinks the index. If memory cannot be had, an
// insert is dropped and counted in dropped().
#ifndef LEAKWATCH_TRACKER_TABLE_H_
#define LEAKWATCH_TRACKER_TABLE_H_

#include <pthread.h>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>

#include "tracker/kinds.h"
#include "tracker/scrub.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
// ThreadSanitizer does not see through ShardLock's atomics: tell it.
#define LW_TSAN_MUTEX(what, ...) __tsan_mutex_##what(this, __VA_ARGS__)
#else
#define LW_TSAN_MUTEX(what, ...) ((void)0)
#endif

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
  kReused = 1 << 7,        // connection, statement judged by growth: used
                           // again after an idle gap of at least half its
                           // threshold (a pooled one, a cached one)
  kParentGone = 1 << 8,    // lives with its parent, judged by growth: a scan
                           // found the parent gone (active_ns = then)
  kReleasedAtShutdown = 1 << 9,  // released only by the interpreter's
                                 // shutdown (Tracker::BeginInterpreterShutdown)
  kAdopted = 1 << 10,  // acquired before `leakwatch attach`, first seen in
                       // use after it (acquired_ns = the attach; the stack
                       // is that first use's)
};

// Record::gap_code: a duration in ms in one byte, about 12% precision, up to
// 2^32 ms (a connection's longest idle gap before it was used again).
inline uint8_t EncodeGapMs(uint64_t ms) {
  if (ms < 8) return static_cast<uint8_t>(ms);
  int e = 63 - __builtin_clzll(ms);  // ms in [2^e, 2^(e+1))
  if (e > 31) return 255;
  uint64_t mantissa = (ms >> (e - 3)) & 7;
  return static_cast<uint8_t>(((e - 2) << 3) | mantissa);
}
inline uint64_t DecodeGapMs(uint8_t code) {
  if (code < 8) return code;
  int e = (code >> 3) + 2;
  return ((uint64_t{8} | (code & 7)) << e) >> 3;
}

struct Record {
  uintptr_t key = 0;  // the handle's address; 0 = free pool entry
  const KindDesc* kind = nullptr;
  int64_t acquired_ns = 0;  // NowNs() at acquisition
  int64_t active_ns = 0;    // last activity (connections, statements),
                            // else acquired_ns
  uintptr_t parent = 0;     // e.g. the connection a result came from
  uint32_t stack_id = 0;    // in the stack depot; 0 = no stack
  Identity identity;        // for a result: its connection's
  uint32_t tid = 0;         // acquiring thread (kernel tid)
  uint16_t flags = 0;
  uint8_t reach = 0;      // Reach (tracker/reach.h): the last scan's verdict
  uint8_t gap_code = 0;   // longest idle gap before reuse (EncodeGapMs)
  uint32_t query_id = 0;  // string-depot id of the query behind the
                          // handle (a result's SQL, a connection's last)
  uint32_t serial = 0;    // set by the hooks to tell reuses of a key
                          // apart (threads: pthread_t values recur)
  // Threads: a code address the handle is about (the start routine); 0 =
  // none. Other kinds (reachability never looks at threads): the NowNs()
  // from which a live scan may look at it again (0 = any time), through
  // ReachDueNs / SetReachDueNs — one field, so that a record stays 80 bytes.
  uintptr_t code = 0;
};

// Record::flags are also changed without the shard's lock (the in-call bit,
// by Tracker's lock-free activity path): every change of a record in the
// table is an atomic read-modify-write, so that none is lost.
inline uint16_t LoadFlags(const Record& r) {
  return __atomic_load_n(&r.flags, __ATOMIC_RELAXED);
}
inline void SetFlags(Record& r, uint16_t bits) {
  __atomic_fetch_or(&r.flags, bits, __ATOMIC_RELAXED);
}
inline void ClearFlags(Record& r, uint16_t bits) {
  __atomic_fetch_and(&r.flags, static_cast<uint16_t>(~bits), __ATOMIC_RELAXED);
}

inline int64_t ReachDueNs(const Record& r) {
  return static_cast<int64_t>(r.code);
}
inline void SetReachDueNs(Record& r, int64_t ns) {
  r.code = static_cast<uintptr_t>(ns);
}
static_assert(sizeof(Record) == 80, "a record's size is on every hook's path");

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

// A short lock (the table's shards, the tracker's notes): one byte, taken
// with one locked instruction and released with a plain store (a
// pthread_mutex_unlock is a second locked instruction: it must learn whether
// to wake a waiter). Waiters are not woken: they spin a little, then yield,
// then nap 50 us at a time. That suits a lock held for tens of nanoseconds by a
// hook, and for one shard's scan by the watchdog. Not recursive; as with any
// lock, a signal handler that takes one its thread holds waits forever.
class ShardLock {
 public:
  constexpr ShardLock() = default;
  ShardLock(const ShardLock&) = delete;
  ShardLock& operator=(const ShardLock&) = delete;

  void Lock() {
    LW_TSAN_MUTEX(pre_lock, 0);
    if (!TryOnce()) Wait(0, nullptr);
    LW_TSAN_MUTEX(post_lock, 0, 0);
  }
  void Unlock() {
    LW_TSAN_MUTEX(pre_unlock, 0);
    held_.store(0, std::memory_order_release);
    LW_TSAN_MUTEX(post_unlock, 0);
  }
  // Locks unless the CLOCK_REALTIME time `deadline_ns` passes first; a free
  // lock is taken even after the deadline.
  bool LockBefore(int64_t deadline_ns) {
    return LockWaiting(deadline_ns, nullptr);
  }
  // Locks unless `give_up` becomes true while waiting.
  bool LockUnlessGivenUp(const std::atomic<bool>& give_up) {
    return LockWaiting(0, &give_up);
  }

 private:
  bool TryOnce() {
    return held_.load(std::memory_order_relaxed) == 0 &&
           held_.exchange(1, std::memory_order_acquire) == 0;
  }
  // Until locked (true), the deadline (if > 0) or `*give_up` (if non-null).
  bool Wait(int64_t deadline_ns, const std::atomic<bool>* give_up);
  // Lock() that may fail, as Wait says.
  bool LockWaiting(int64_t deadline_ns, const std::atomic<bool>* give_up);

  std::atomic<uint8_t> held_{0};
};

// A thread's young slot (ShardedTable's young records; the slots are
// table.cc's global array, and only the owning thread fills its own).
namespace young_internal {

// A release from a young slot, readable by other threads (FindReleased):
// `seq` is odd while the owner rewrites the entry.
struct YoungReleased {
  std::atomic<uint32_t> seq{0};
  ReleasedRecord r;
};

inline constexpr int kYoungReleased = 4;

// Rewrites `entry` (by the slot's owner, or with no other thread about) as a
// seqlock writer does, so that FindYoungReleased never copies it half written.
inline void WriteReleased(YoungReleased& entry, const ReleasedRecord& r) {
  const uint32_t seq = entry.seq.load(std::memory_order_relaxed);
  entry.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  // Field by field: a whole-struct copy becomes a `rep movs`.
  entry.r.key = r.key;
  entry.r.kind = r.kind;
  entry.r.acquire_stack_id = r.acquire_stack_id;
  entry.r.release_stack_id = r.release_stack_id;
  entry.r.released_by = r.released_by;
  entry.r.acquired_ns = r.acquired_ns;
  entry.r.released_ns = r.released_ns;
  entry.seq.store(seq + 2, std::memory_order_release);
}

// A slot's state: 0 (empty), kMoving (its record being moved into the
// index by another thread) or YoungState(key) (holding `key`'s record).
inline constexpr uintptr_t kMoving = 1;
inline uintptr_t YoungState(uintptr_t key) { return ~key; }

struct alignas(64) YoungSlot {
  std::atomic<uintptr_t> state{0};  // 0, kMoving or YoungState(key)
  // The handle whose blocking call the owning thread is in, begun and ended
  // within one hook (Tracker::BeginCallInHook), or 0: read by the watchdog
  // as that record's kInCall (ShardedTable::KeysInCall).
  std::atomic<uintptr_t> in_call{0};
  Record record;
  YoungReleased released[kYoungReleased];
  uint32_t next_evict = 0;
  uint32_t next_free = 0;  // free list (slot + 1), under g_young_mu
  uint64_t acquired[kMaxKinds] = {};
  uint64_t released_count[kMaxKinds] = {};

  // Remembers `r` in place of an earlier release of the same key among
  // this slot's recently released (an address the program reuses); false
  // if there is none (ShardedTable::RememberYoungRelease then).
  bool RememberSameKey(const ReleasedRecord& r) {
    for (YoungReleased& entry : released) {
      if (entry.r.key == r.key) {
        WriteReleased(entry, r);
        return true;
      }
    }
    return false;
  }
};

// The calling thread's slot (null: none yet, or none to be had).
extern __attribute__((tls_model("initial-exec"))) __thread YoungSlot* t_young;

}  // namespace young_internal

class ShardedTable {
 public:
  // Recently released records kept per shard (4,096 in all), in kRecentSets
  // sets of kRecentWays picked by a hash of the key. A release replaces an
  // earlier one of the same key, else the least recent of its set: a key's
  // last release is forgotten only after kRecentWays releases of other keys
  // of its shard and set, and a program that keeps releasing the same few
  // addresses (malloc hands them out again) does not push the others out.
  // (A ring per shard would not do: a shard holds whole granules, so a
  // closed connection's neighbours, released again and again, would evict
  // it within 64 releases.)
  static constexpr int kRecentWays = 4;  // recent_order holds 4 2-bit ways
  static constexpr int kRecentSets = 16;
  static constexpr int kRecentPerShard = kRecentWays * kRecentSets;

  static constexpr int kPresentBuckets = 128;
  static constexpr int kShardBits = 6;
  static constexpr int kShards = 1 << kShardBits;
  // Keys in one aligned 2^kGranuleBits-byte range share a shard.
  static constexpr int kGranuleBits = 18;
  // Records of a shard's first chunk (a whole number of 4 KiB pages: 256
  // records, 20 KiB); chunk k > 0 holds kFirstChunkRecords << (k - 1).
  static constexpr uint32_t kFirstChunkRecords =
      std::lcm(sizeof(Record), size_t{4096}) / sizeof(Record);

  constexpr ShardedTable() = default;
  ~ShardedTable();  // for tests: the tracker's table is never destroyed
  ShardedTable(const ShardedTable&) = delete;
  ShardedTable& operator=(const ShardedTable&) = delete;

  // Inserts `record` (record.key != 0). If the key is already present (an
  // address reused without a release we saw) the old record is replaced and
  // copied to `*replaced`, and true is returned; it is counted as replaced,
  // or as released if `replace_is_release` (the key can only have been
  // reused after a release that has not reached the table yet).
  // (`count` false: not counted as acquired, for a young record moved in.)
  bool Insert(const Record& record, Record* replaced,
              bool replace_is_release = false, bool count = true);

  // --- Young records --------------------------------------------------------
  // One table (the tracker's: EnableYoung) keeps each thread's newest
  // record of a short-lived kind (results) outside the index, in a slot of
  // the thread's own (a global array, not thread-local storage, so that
  // other threads can see it): most results are released by the thread
  // that got them before it gets the next one, and then neither the insert
  // nor the erase takes a lock or touches the index. The release is still
  // remembered (in the slot's own recently released, which pass to the
  // shard's when pushed out), and still counted (in the slot's counters,
  // summed by GetTotals).
  //
  // Every other way into the table sees young records as if they were in
  // the index: ForEach (scans, reports), Clear and a fork move them all in
  // first; Update, Mutate and an erase that miss look in the other threads'
  // slots (moving a record found there in); size and GetTotals count them.
  // (A young record does not replace a stale record of the same key in the
  // index, as Insert would: a key is reused only after a release we saw.)
  //
  // Thread safety: a slot's state word is 0 (empty), 1 (being moved by
  // another thread, which holds young_mu_) or ~key (the complement: the
  // reachability scan reads the agent's memory, not this). The owner fills
  // an empty slot and publishes the key; it empties its slot with a CAS;
  // another thread moves or takes a record with a CAS to 1, under
  // young_mu_.
  void EnableYoung();
  // The calling thread's slot's record, to be filled in whole for `key` and
  // then published by PublishYoung, nothing else in between (the one before
  // it, if still there, goes into the index); or null, and the record goes
  // into the index (Insert): this table keeps no young records, the thread
  // has no slot, or the index may hold `key`.
  Record* BeginYoung(uintptr_t key);
  // BeginYoung's common case, inline and with no side effect: the slot's
  // record if the thread has a slot, it is empty and the index surely has
  // no record of `key`; else null (then BeginYoung decides).
  __attribute__((always_inline)) Record* BeginYoungFast(uintptr_t key) {
    young_internal::YoungSlot* y = young_internal::t_young;
    if (!young_ || y == nullptr ||
        y->state.load(std::memory_order_acquire) != 0 || MayBePresent(key)) {
      return nullptr;
    }
    return &y->record;
  }
  __attribute__((always_inline)) void PublishYoung() {
    young_internal::YoungSlot* y = young_internal::t_young;
    if (y->record.kind != nullptr) Bump(y->acquired[y->record.kind->index]);
    y->state.store(young_internal::YoungState(y->record.key),
                   std::memory_order_release);
  }
  // The release of the calling thread's young record `key`, if it is
  // there: remembered with `release_stack_id`, counted, its flags copied
  // to `*flags` and its kind to `*kind`. Takes no lock (unless an older
  // release goes to its shard), leaves errno alone.
  // Inline (EraseOwnYoung) for the common case: the slot holds `key` and an
  // earlier release of the same address is remembered there.
  __attribute__((always_inline)) bool ReleaseOwnYoung(
      uintptr_t key, uint32_t release_stack_id, uint32_t released_by,
      int64_t now_ns, uint16_t* flags, const KindDesc** kind) {
    return young_ && EraseOwnYoung(key, nullptr, true, release_stack_id,
                                   released_by, now_ns, flags, kind);
  }
  // The keys of the handles that a thread is inside a blocking call on,
  // according to the young slots (BeginCallInHook), sorted: each as if its
  // record had kInCall. For the watchdog.
  void KeysInCall(ScrubbedVector<uintptr_t>* keys) const;
  // True if a young slot says a thread is inside a call on `key`.
  bool InCallOnAnyThread(uintptr_t key) const;
  // The calling thread's slot, if it has one.
  static young_internal::YoungSlot* OwnSlot() {
    return young_internal::t_young;
  }

  // The release `released` of slot `y`'s record (its owner, no earlier
  // release of the key there): in place of the slot's oldest, which goes to
  // its shard's recently released. Keeps errno.
  void RememberYoungRelease(young_internal::YoungSlot& y,
                            const ReleasedRecord& released);
  // Inserts a record that was young into the index, not counted again (it
  // was counted as it became young).
  void InsertMoved(const Record& record);

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
    // Not the table's: in a `leakwatch attach` session, handles acquired
    // before it and adopted (Tracker::Adopt; not in `acquired`, nor their
    // releases in `released`).
    uint64_t adopted[kMaxKinds] = {};
  };
  Totals GetTotals();

  size_t size() const;  // live records (racy sum, for stats)
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Memory held by the shards' pools and indexes (racy sum, for stats).
  size_t bytes() const;

  // The shard that holds `key` (for tests that aim keys at one shard).
  static int ShardOf(uintptr_t key) {
    return static_cast<int>(Hash(key >> kGranuleBits) >> (64 - kShardBits));
  }
  // The set of the recently released that `key` goes to (for tests).
  static int RecentSetOf(uintptr_t key) {
    return static_cast<int>(Hash(key) >> 32) & (kRecentSets - 1);
  }
  // Where `key`'s probe starts in an index of `slots` slots (a power of two).
  static size_t HomeSlot(uintptr_t key, size_t slots) {
    return static_cast<uint32_t>(Hash(key)) & (slots - 1);
  }

  // Calls fn(begin, end) for every mapping that holds records (for the
  // reachability scan, which must not count the table's own copies of
  // keys). Takes no lock: chunks are never moved or unmapped.
  void ForEachRecordMapping(void (*fn)(uintptr_t, uintptr_t, void*),
                            void* arg) const;

  // Forgets every record and every recently released one, shard by shard
  // (not counted as releases): what an earlier `leakwatch attach` session
  // saw is stale once releases went unseen.
  void Clear();

  // Gives memory back after a burst (the watchdog, between scans; never a
  // hook): in a shard whose live records are under a quarter of the records
  // it handed out, the records above the highest live one are dropped (their
  // pages returned with MADV_DONTNEED; the mappings stay, since a thread's
  // cache of records may still read them: see Tracker's lock-free activity)
  // and the free list is rebuilt lowest first, so that new records fill the
  // bottom; an index at under 1/8 load is rebuilt at half the size or less.
  // One shard's lock at a time. Returns the bytes given back.
  size_t Shrink();

  // fork(): lock every shard in index order before, unlock after.
  void LockAllForFork();
  void UnlockAllAfterFork();
  // In the child, after UnlockAllAfterFork: the other threads' young
  // records move into the index, and their slots are free again.
  void AdoptYoungAfterFork();

 private:
  // Chunk k holds records [ChunkBase(k), ChunkBase(k) + ChunkRecords(k)).
  static constexpr int kMaxChunks =
      std::bit_width(UINT32_MAX / kFirstChunkRecords) + 1;
  static uint32_t ChunkOf(uint32_t n) {
    return static_cast<uint32_t>(std::bit_width(n / kFirstChunkRecords));
  }
  static uint32_t ChunkBase(uint32_t k) {
    return k == 0 ? 0 : kFirstChunkRecords << (k - 1);
  }
  static uint32_t ChunkRecords(uint32_t k) {
    return k == 0 ? kFirstChunkRecords : kFirstChunkRecords << (k - 1);
  }

  struct alignas(64) Shard {
    // The lock and what every operation reads share the first cache line.
    ShardLock mu;
    // Guarded by mu:
    uint64_t* slots = nullptr;  // slot_mask + 1 slots (none before the first
                                // insert); 0 = empty, else Slot()
    uint32_t slot_mask = 0;
    uint32_t count = 0;      // live records
    uint32_t free_head = 0;  // record number + 1 of the first free record
                             // (linked through Record::parent); 0 = none
    uint32_t used = 0;       // records handed out from the chunks so far
                             // (Shrink lowers it)
    // `used` and `count` when Shrink last looked (it looks again once
    // either changed).
    uint32_t shrink_used = 0;
    uint32_t shrink_count = 0;
    // Chunk k's address minus ChunkBase(k) records (0 = not mapped yet):
    // record n is at chunk_origin[ChunkOf(n)] + n * sizeof(Record).
    uintptr_t chunk_origin[kMaxChunks] = {};
    // Per-kind totals (by KindDesc::index), kept here rather than in shared
    // atomics so that threads on different shards do not share a cache line.
    // Written under mu with Bump, read without it by GetTotals: relaxed
    // atomic loads and stores on both sides (plain increments under the lock
    // would race with GetTotals' unlocked loads). On x86-64 a relaxed
    // load+store is the same
    // mov/add/mov as ++; no locked instruction is needed, the lock already
    // serialises writers.
    uint64_t acquired[kMaxKinds] = {};
    uint64_t released[kMaxKinds] = {};
    uint64_t replaced[kMaxKinds] = {};  // acquired again without a release
    // Live records per PresentBucket (under mu; read without it by
    // MayBePresent): a young record needs no look in the index when its
    // bucket is empty. A count that reaches kPresentFull stays there (the
    // bucket is taken as never empty again until Clear).
    uint16_t present[kPresentBuckets] = {};
  };
  // A shard's recently released (under its mu), apart from the shard: every
  // scan touches every shard, and 64 shards of a few hundred bytes are a
  // few pages, where with these in them they were one page each.
  struct ShardRecent {
    // Set s is [s * kRecentWays, (s + 1) * kRecentWays); order[s] ^
    // kInitialOrder lists its ways from the most recently written (bits
    // 1..0) to the least (bits 7..6). Stored that way, the initial order
    // (way 0 the most recent, way 3 the least: 0xe4) is zero: the table is
    // all zeros before it is used, in .bss, and none of its pages is
    // resident until written.
    static constexpr uint8_t kInitialOrder = 0xe4;
    ReleasedRecord recent[kRecentPerShard];
    uint8_t order[kRecentSets] = {};
  };
  ShardRecent& RecentOf(const Shard& shard) {
    return recent_[&shard - shards_];
  }

  // Young records (see EnableYoung): for a miss, moves `key`'s young record
  // from another thread's slot into the index, and waits for a move under
  // way; true if the caller is to look in the index again (young records
  // are in use).
  bool MoveYoungIn(uintptr_t key);
  // The calling thread's erase of its own young record `key`: true if it
  // was there (copied to `*removed`, remembered if `remember`, counted).
  // Inline: one CAS; a new address's release goes to RememberYoungRelease.
  __attribute__((always_inline)) bool EraseOwnYoung(
      uintptr_t key, Record* removed, bool remember, uint32_t release_stack_id,
      uint32_t released_by, int64_t now_ns, uint16_t* flags = nullptr,
      const KindDesc** kind = nullptr) {
    young_internal::YoungSlot* y = young_internal::t_young;
    if (y == nullptr) return false;
    uintptr_t want = young_internal::YoungState(key);
    if (y->state.load(std::memory_order_acquire) != want ||
        !y->state.compare_exchange_strong(want, 0, std::memory_order_acq_rel)) {
      // Being moved into the index by another thread (this key's record or
      // the one before): the caller looks there once the move is done.
      WaitWhileMoved(*y);
      return false;
    }
    // The slot is empty now, and only this thread fills it (a hook in a
    // signal handler during this one records nothing): the record is
    // still there to read.
    const Record& r = y->record;
    if (removed != nullptr) *removed = r;
    if (flags != nullptr) *flags = r.flags;
    if (kind != nullptr) *kind = r.kind;
    if (r.kind != nullptr) Bump(y->released_count[r.kind->index]);
    if (!remember) return true;
    const ReleasedRecord released{
        key,         r.kind,        r.stack_id, release_stack_id,
        released_by, r.acquired_ns, now_ns};
    if (!y->RememberSameKey(released)) RememberYoungRelease(*y, released);
    return true;
  }
  // Returns once slot `y` is not being moved (out of line: it may yield).
  static void WaitWhileMoved(const young_internal::YoungSlot& y);
  // Every young record into the index (false if young_mu_ could not be had
  // by the CLOCK_REALTIME `deadline_ns` (> 0) or before `*give_up`).
  bool FlushYoung(int64_t deadline_ns, const std::atomic<bool>* give_up);
  // The latest release of `key` among the young slots' recently released,
  // if later than `*out` (or if !*found).
  void FindYoungReleased(uintptr_t key, ReleasedRecord* out, bool* found) const;
  // Remembers `released` among the shard's recently released (under the
  // shard's lock), unless the shard has a later release of its key.
  void RememberLocked(Shard& shard, const ReleasedRecord& released);
  bool young_ = false;

  static int PresentBucket(uintptr_t key) {
    return static_cast<int>(Hash(key) >> 40) & (kPresentBuckets - 1);
  }
  static constexpr uint16_t kPresentFull = UINT16_MAX;
  static void NotePresent(Shard& shard, uintptr_t key, int delta) {
    uint16_t& n = shard.present[PresentBucket(key)];
    if (n == kPresentFull) return;
    __atomic_store_n(&n, static_cast<uint16_t>(n + delta), __ATOMIC_RELAXED);
  }
  // False if the index has no record of `key` (its bucket is empty: no
  // lock needed, since only the key's own acquisition, this one, could be
  // adding it now); true if it may.
  bool MayBePresent(uintptr_t key) {
    return __atomic_load_n(&ShardFor(key).present[PresentBucket(key)],
                           __ATOMIC_RELAXED) != 0;
  }

  // ++counter for a per-kind total of a shard whose mu is held.
  __attribute__((always_inline)) static void Bump(uint64_t& counter) {
    __atomic_store_n(&counter, __atomic_load_n(&counter, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
  }

  static uint64_t Hash(uintptr_t key) {
    uint64_t h = static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 31);
  }
  Shard& ShardFor(uintptr_t key) { return shards_[ShardOf(key)]; }

  // A slot: the low 32 bits of the key's hash (which also give its home
  // slot) above the record number + 1.
  static uint64_t Slot(uint32_t tag, uint32_t n) {
    return (static_cast<uint64_t>(tag) << 32) | (n + 1);
  }
  static uint32_t SlotRecord(uint64_t slot) {
    return static_cast<uint32_t>(slot) - 1;
  }
  static Record& RecordAt(const Shard& shard, uint32_t n) {
    return *reinterpret_cast<Record*>(shard.chunk_origin[ChunkOf(n)] +
                                      uintptr_t{n} * sizeof(Record));
  }
  // Index of `key`'s slot in `shard` (*found), or of the empty slot where it
  // would go; mu held, shard.slots non-null.
  static size_t Probe(const Shard& shard, uintptr_t key, uint32_t tag,
                      bool* found) {
    size_t mask = shard.slot_mask;
    size_t i = tag & mask;
    for (;; i = (i + 1) & mask) {
      uint64_t s = shard.slots[i];
      if (s == 0) break;
      if (static_cast<uint32_t>(s >> 32) == tag &&
          RecordAt(shard, SlotRecord(s)).key == key) {
        *found = true;
        return i;
      }
    }
    *found = false;
    return i;
  }
  // The record for `key` and its slot in `*slot`, or null; mu held.
  static Record* FindLocked(const Shard& shard, uintptr_t key, size_t* slot) {
    if (shard.count == 0) return nullptr;
    bool found;
    *slot = Probe(shard, key, static_cast<uint32_t>(Hash(key)), &found);
    return found ? &RecordAt(shard, SlotRecord(shard.slots[*slot])) : nullptr;
  }
  static bool GrowSlotsLocked(Shard& shard);
  // Rebuilds the index at `size` slots (a power of two, > count); mu held.
  static bool ResizeSlotsLocked(Shard& shard, size_t size);
  static size_t ShrinkLocked(Shard& shard);
  // A free record's number: from the free list, else the pool (a new chunk
  // if need be). False if out of memory.
  static bool TakeRecordLocked(Shard& shard, uint32_t* n) {
    if (shard.free_head == 0) return AddRecordLocked(shard, n);
    *n = shard.free_head - 1;
    shard.free_head = static_cast<uint32_t>(RecordAt(shard, *n).parent);
    return true;
  }
  static bool AddRecordLocked(Shard& shard, uint32_t* n);
  bool EraseImpl(uintptr_t key, Record* removed, bool remember,
                 uint32_t release_stack_id, uint32_t released_by,
                 int64_t now_ns);
  // Removes the record of slot `i` of `shard`: its record to the free list,
  // the slot by backward-shift deletion; mu held.
  static void EraseSlotLocked(Shard& shard, size_t i);

  Shard shards_[kShards];
  ShardRecent recent_[kShards];
  std::atomic<uint64_t> dropped_{0};
};

template <typename Fn>
bool ShardedTable::Update(uintptr_t key, Fn&& fn) {
  Shard& shard = ShardFor(key);
  for (int round = 0;; ++round) {
    size_t slot;
    shard.mu.Lock();
    Record* r = FindLocked(shard, key, &slot);
    if (r != nullptr) fn(*r);
    shard.mu.Unlock();
    if (r != nullptr || round > 0 || !MoveYoungIn(key)) return r != nullptr;
  }
}

template <typename Fn>
bool ShardedTable::Mutate(uintptr_t key, Fn&& fn, Record* removed,
                          bool* erased) {
  Shard& shard = ShardFor(key);
  size_t slot;
  *erased = false;
  shard.mu.Lock();
  Record* r = FindLocked(shard, key, &slot);
  if (r == nullptr) {
    shard.mu.Unlock();
    if (!MoveYoungIn(key)) return false;
    shard.mu.Lock();
    r = FindLocked(shard, key, &slot);
  }
  if (r != nullptr && fn(*r)) {
    if (removed != nullptr) *removed = *r;
    if (r->kind != nullptr) Bump(shard.released[r->kind->index]);
    EraseSlotLocked(shard, slot);
    *erased = true;
  }
  shard.mu.Unlock();
  return r != nullptr;
}

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_TABLE_H_
