#include "tracker/table.h"

#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <new>

#include "tracker/clock.h"

namespace leakwatch {

namespace {

// An index of `size` slots, zeroed: from malloc while smaller than a page,
// else mapped, like the records and for the same reason (the host's heap).
uint64_t* NewSlots(size_t size) {
  if (size * sizeof(uint64_t) < 4096) {
    return new (std::nothrow) uint64_t[size]();
  }
  void* p = mmap(nullptr, size * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint64_t*>(p);
}

void DeleteSlots(uint64_t* slots, size_t size) {
  if (size * sizeof(uint64_t) < 4096) {
    delete[] slots;
  } else {
    munmap(slots, size * sizeof(uint64_t));
  }
}

}  // namespace

bool ShardedTable::GrowSlotsLocked(Shard& shard) {
  size_t old_size = shard.slots == nullptr ? 0 : size_t{shard.slot_mask} + 1;
  size_t new_size = old_size == 0 ? 16 : old_size * 2;
  if (new_size > (size_t{1} << 32)) return false;
  return ResizeSlotsLocked(shard, new_size);
}

bool ShardedTable::ResizeSlotsLocked(Shard& shard, size_t new_size) {
  size_t old_size = shard.slots == nullptr ? 0 : size_t{shard.slot_mask} + 1;
  uint64_t* slots = NewSlots(new_size);
  if (slots == nullptr) return false;
  size_t mask = new_size - 1;
  for (size_t j = 0; j < old_size; ++j) {
    uint64_t s = shard.slots[j];
    if (s == 0) continue;
    size_t i = (s >> 32) & mask;
    while (slots[i] != 0) i = (i + 1) & mask;
    slots[i] = s;
  }
  if (old_size != 0) DeleteSlots(shard.slots, old_size);
  shard.slots = slots;
  shard.slot_mask = static_cast<uint32_t>(mask);
  return true;
}

bool ShardedTable::AddRecordLocked(Shard& shard, uint32_t* n) {
  if (shard.used == UINT32_MAX - 1) return false;
  uint32_t k = ChunkOf(shard.used);
  if (shard.chunk_origin[k] == 0) {
    size_t bytes = ChunkRecords(k) * sizeof(Record);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    // Huge pages would make up to 2 MiB resident at the first touch.
    if (bytes >= (size_t{2} << 20)) madvise(p, bytes, MADV_NOHUGEPAGE);
    shard.chunk_origin[k] = reinterpret_cast<uintptr_t>(p) -
                            uintptr_t{ChunkBase(k)} * sizeof(Record);
  }
  *n = shard.used++;
  new (&RecordAt(shard, *n)) Record();
  return true;
}

bool ShardedTable::Insert(const Record& record, Record* replaced,
                          bool replace_is_release) {
  uint32_t tag = static_cast<uint32_t>(Hash(record.key));
  Shard& shard = ShardFor(record.key);
  shard.mu.Lock();
  bool found = false;
  size_t i = 0;
  if (shard.slots != nullptr) i = Probe(shard, record.key, tag, &found);
  if (found) {
    Record& old = RecordAt(shard, SlotRecord(shard.slots[i]));
    if (replaced != nullptr) *replaced = old;
    if (old.kind != nullptr) {
      Bump((replace_is_release ? shard.released
                               : shard.replaced)[old.kind->index]);
    }
    old = record;
  } else {
    uint32_t n;
    // Grow at 3/4 load: linear probing stays short (an absent key: 8.5
    // slots on average, about one cache line of 8-byte slots).
    bool grow =
        shard.slots == nullptr ||
        (shard.count + uint64_t{1}) * 4 > (shard.slot_mask + uint64_t{1}) * 3;
    if ((grow && !GrowSlotsLocked(shard)) || !TakeRecordLocked(shard, &n)) {
      shard.mu.Unlock();
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (grow) i = Probe(shard, record.key, tag, &found);
    shard.slots[i] = Slot(tag, n);
    RecordAt(shard, n) = record;
    ++shard.count;
  }
  if (record.kind != nullptr) Bump(shard.acquired[record.kind->index]);
  shard.mu.Unlock();
  return found;
}

bool ShardedTable::Erase(uintptr_t key, Record* removed) {
  return EraseImpl(key, removed, /*remember=*/false, 0, 0, 0);
}

void ShardedTable::EraseSlotLocked(Shard& shard, size_t i) {
  uint32_t n = SlotRecord(shard.slots[i]);
  Record& r = RecordAt(shard, n);
  r.key = 0;
  r.parent = shard.free_head;
  shard.free_head = n + 1;
  --shard.count;
  // Backward-shift deletion: pull later slots of the cluster into the hole.
  size_t mask = shard.slot_mask;
  size_t hole = i;
  size_t j = i;
  while (true) {
    j = (j + 1) & mask;
    uint64_t s = shard.slots[j];
    if (s == 0) break;
    // It moves into the hole unless its home lies cyclically in (hole, j],
    // that is, if it is at least as far from its home as from the hole.
    size_t home = (s >> 32) & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      shard.slots[hole] = s;
      hole = j;
    }
  }
  shard.slots[hole] = 0;
}

bool ShardedTable::EraseAndRemember(uintptr_t key, Record* removed,
                                    uint32_t release_stack_id,
                                    uint32_t released_by, int64_t now_ns) {
  return EraseImpl(key, removed, /*remember=*/true, release_stack_id,
                   released_by, now_ns);
}

bool ShardedTable::EraseImpl(uintptr_t key, Record* removed, bool remember,
                             uint32_t release_stack_id, uint32_t released_by,
                             int64_t now_ns) {
  Shard& shard = ShardFor(key);
  size_t slot;
  shard.mu.Lock();
  Record* r = FindLocked(shard, key, &slot);
  if (r == nullptr) {
    shard.mu.Unlock();
    return false;
  }
  if (removed != nullptr) *removed = *r;
  if (remember) {
    // In place of an earlier release of the same key, else of the set's
    // least recent; then this way becomes the set's most recent.
    int s = RecentSetOf(key);
    ReleasedRecord* set = &shard.recent[s * kRecentWays];
    uint32_t order = shard.recent_order[s];
    uint32_t way = 0;
    while (way < kRecentWays && set[way].key != key) ++way;
    if (way == kRecentWays) way = order >> (2 * (kRecentWays - 1));
    set[way] = ReleasedRecord{
        r->key,      r->kind,        r->stack_id, release_stack_id,
        released_by, r->acquired_ns, now_ns};
    uint32_t rank = 0;
    while (((order >> (2 * rank)) & 3) != way) ++rank;
    uint32_t newer = order & ((1u << (2 * rank)) - 1);
    uint32_t older = order & ~((1u << (2 * rank + 2)) - 1);
    shard.recent_order[s] = static_cast<uint8_t>(older | newer << 2 | way);
  }
  if (r->kind != nullptr) Bump(shard.released[r->kind->index]);
  EraseSlotLocked(shard, slot);
  shard.mu.Unlock();
  return true;
}

bool ShardedTable::FindReleased(uintptr_t key, ReleasedRecord* out) {
  Shard& shard = ShardFor(key);
  const ReleasedRecord* set = &shard.recent[RecentSetOf(key) * kRecentWays];
  bool found = false;
  shard.mu.Lock();
  for (int way = 0; way < kRecentWays && !found; ++way) {
    if (set[way].key == key) {
      *out = set[way];
      found = true;
    }
  }
  shard.mu.Unlock();
  return found;
}

namespace {

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

bool ShardLock::Wait(int64_t deadline_ns, const std::atomic<bool>* give_up) {
  for (int round = 0;; round = std::min(round + 1, 1000)) {
    if (TryOnce()) return true;
    if (round < 64) {
      CpuRelax();
      continue;
    }
    if ((deadline_ns > 0 && WallClockNs() >= deadline_ns) ||
        (give_up != nullptr && give_up->load(std::memory_order_acquire))) {
      return TryOnce();
    }
    if (round < 96) {
      sched_yield();
    } else {
      struct timespec nap = {0, 50000};
      nanosleep(&nap, nullptr);
    }
  }
}

bool ShardLock::LockWaiting(int64_t deadline_ns,
                            const std::atomic<bool>* give_up) {
  LW_TSAN_MUTEX(pre_lock, __tsan_mutex_try_lock);
  bool locked = TryOnce() || Wait(deadline_ns, give_up);
  LW_TSAN_MUTEX(
      post_lock,
      __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

int ShardedTable::ForEach(const std::function<void(Record&)>& fn,
                          int64_t lock_deadline_ns,
                          const std::atomic<bool>* give_up) {
  int skipped = 0;
  for (Shard& shard : shards_) {
    bool locked;
    if (lock_deadline_ns > 0) {
      // Once the deadline has passed (an interrupted thread holds a shard),
      // each remaining shard still gets a short grace: running threads let
      // go of a shard within microseconds.
      locked = shard.mu.LockBefore(
          std::max(lock_deadline_ns, WallClockNs() + 20000000));
    } else if (give_up != nullptr) {
      locked = shard.mu.LockUnlessGivenUp(*give_up);
    } else {
      shard.mu.Lock();
      locked = true;
    }
    if (!locked) {
      ++skipped;
      continue;
    }
    for (uint32_t k = 0; k < kMaxChunks && ChunkBase(k) < shard.used; ++k) {
      Record* chunk = &RecordAt(shard, ChunkBase(k));
      uint32_t n = std::min(ChunkRecords(k), shard.used - ChunkBase(k));
      for (uint32_t i = 0; i < n; ++i) {
        if (chunk[i].key != 0) fn(chunk[i]);
      }
    }
    shard.mu.Unlock();
  }
  return skipped;
}

void ShardedTable::Clear() {
  for (Shard& shard : shards_) {
    shard.mu.Lock();
    for (size_t i = 0; shard.slots != nullptr && i <= shard.slot_mask; ++i) {
      if (shard.slots[i] == 0) continue;
      uint32_t n = SlotRecord(shard.slots[i]);
      Record& r = RecordAt(shard, n);
      r.key = 0;
      r.parent = shard.free_head;
      shard.free_head = n + 1;
      shard.slots[i] = 0;
    }
    shard.count = 0;
    for (ReleasedRecord& released : shard.recent) released = ReleasedRecord();
    shard.mu.Unlock();
  }
}

ShardedTable::Totals ShardedTable::GetTotals() {
  Totals totals;
  // Read without the shard locks (the exit report must not block on a lock
  // a signal-interrupted thread holds); counters are word-sized, so a value
  // read while another thread runs is at worst slightly stale.
  for (Shard& shard : shards_) {
    for (int k = 0; k < kMaxKinds; ++k) {
      totals.acquired[k] +=
          __atomic_load_n(&shard.acquired[k], __ATOMIC_RELAXED);
      totals.released[k] +=
          __atomic_load_n(&shard.released[k], __ATOMIC_RELAXED);
      totals.replaced[k] +=
          __atomic_load_n(&shard.replaced[k], __ATOMIC_RELAXED);
    }
  }
  return totals;
}

size_t ShardedTable::size() const {
  size_t n = 0;
  for (const Shard& shard : shards_) n += shard.count;
  return n;
}

size_t ShardedTable::bytes() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    if (shard.slots != nullptr) {
      n += (size_t{shard.slot_mask} + 1) * sizeof(uint64_t);
    }
    n += size_t{shard.used} * sizeof(Record);  // the chunks' touched part
  }
  return n;
}

ShardedTable::~ShardedTable() {
  for (Shard& shard : shards_) {
    if (shard.slots != nullptr) {
      DeleteSlots(shard.slots, size_t{shard.slot_mask} + 1);
    }
    for (uint32_t k = 0; k < kMaxChunks && shard.chunk_origin[k] != 0; ++k) {
      munmap(&RecordAt(shard, ChunkBase(k)), ChunkRecords(k) * sizeof(Record));
    }
  }
}

size_t ShardedTable::ShrinkLocked(Shard& shard) {
  if (shard.used <= kFirstChunkRecords ||
      uint64_t{shard.count} * 4 >= shard.used ||
      (shard.used == shard.shrink_used && shard.count == shard.shrink_count)) {
    return 0;
  }
  // The highest live record.
  uint32_t top = 0;  // records [0, top) are kept
  for (size_t i = 0; shard.slots != nullptr && i <= shard.slot_mask; ++i) {
    if (shard.slots[i] != 0)
      top = std::max(top, SlotRecord(shard.slots[i]) + 1);
  }
  // The free list again, of the records below it, lowest first.
  uint32_t head = 0;
  for (uint32_t n = top; n-- > 0;) {
    Record& r = RecordAt(shard, n);
    if (r.key != 0) continue;
    r.parent = head;
    head = n + 1;
  }
  shard.free_head = head;
  // The pages wholly above record `top`, chunk by chunk: records
  // [max(top, base), min(used, base + records)) of chunk k. A chunk is a
  // whole number of pages, so rounding the end up stays inside it.
  size_t given = 0;
  const auto page_up = [](uintptr_t a) {
    return (a + uintptr_t{4095}) & ~uintptr_t{4095};
  };
  for (uint32_t k = ChunkOf(top); k < kMaxChunks && ChunkBase(k) < shard.used;
       ++k) {
    if (shard.chunk_origin[k] == 0) break;
    const uint32_t lo = std::max(top, ChunkBase(k));
    const uint32_t hi = std::min(shard.used, ChunkBase(k) + ChunkRecords(k));
    const uintptr_t from =
        page_up(shard.chunk_origin[k] + uintptr_t{lo} * sizeof(Record));
    const uintptr_t to =
        page_up(shard.chunk_origin[k] + uintptr_t{hi} * sizeof(Record));
    if (from < to &&
        madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED) == 0) {
      given += to - from;
    }
  }
  // Records from `top` on are zero (or never touched) when handed out again:
  // AddRecordLocked constructs each.
  shard.used = top;
  shard.shrink_used = top;
  shard.shrink_count = shard.count;
  // The index, down to at least twice the live records (16 at least).
  size_t slots = shard.slots == nullptr ? 0 : size_t{shard.slot_mask} + 1;
  if (slots > 16 && uint64_t{shard.count} * 8 < slots) {
    size_t want = 16;
    while (want < uint64_t{shard.count} * 2) want *= 2;
    if (want < slots && ResizeSlotsLocked(shard, want)) {
      given += (slots - want) * sizeof(uint64_t);
    }
  }
  return given;
}

size_t ShardedTable::Shrink() {
  size_t given = 0;
  for (Shard& shard : shards_) {
    // Cheap unlocked look first: most shards have nothing to give.
    if (__atomic_load_n(&shard.used, __ATOMIC_RELAXED) <= kFirstChunkRecords) {
      continue;
    }
    shard.mu.Lock();
    given += ShrinkLocked(shard);
    shard.mu.Unlock();
  }
  return given;
}

void ShardedTable::LockAllForFork() {
  for (Shard& shard : shards_) shard.mu.Lock();
}

void ShardedTable::UnlockAllAfterFork() {
  for (Shard& shard : shards_) shard.mu.Unlock();
}

void ShardedTable::ForEachRecordMapping(void (*fn)(uintptr_t, uintptr_t, void*),
                                        void* arg) const {
  for (const Shard& shard : shards_) {
    for (uint32_t k = 0; k < kMaxChunks; ++k) {
      uintptr_t origin =
          __atomic_load_n(&shard.chunk_origin[k], __ATOMIC_ACQUIRE);
      if (origin == 0) continue;
      uintptr_t begin = origin + uintptr_t{ChunkBase(k)} * sizeof(Record);
      fn(begin, begin + uintptr_t{ChunkRecords(k)} * sizeof(Record), arg);
    }
  }
}

}  // namespace leakwatch
