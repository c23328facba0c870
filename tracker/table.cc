#include "tracker/table.h"

#include <time.h>

#include <algorithm>
#include <new>

namespace leakwatch {

size_t ShardedTable::Probe(const Shard& shard, uintptr_t key, uint64_t hash) {
  size_t mask = shard.capacity - 1;
  size_t i = hash & mask;
  while (shard.slots[i].key != 0 && shard.slots[i].key != key) {
    i = (i + 1) & mask;
  }
  return i;
}

Record* ShardedTable::FindLocked(Shard& shard, uintptr_t key, uint64_t hash) {
  if (shard.count == 0) return nullptr;
  Record& r = shard.slots[Probe(shard, key, hash)];
  return r.key == key ? &r : nullptr;
}

bool ShardedTable::GrowLocked(Shard& shard) {
  size_t new_capacity = shard.capacity == 0 ? 16 : shard.capacity * 2;
  Record* slots = new (std::nothrow) Record[new_capacity];
  if (slots == nullptr) return false;
  Record* old = shard.slots;
  size_t old_capacity = shard.capacity;
  shard.slots = slots;
  shard.capacity = new_capacity;
  for (size_t i = 0; i < old_capacity; ++i) {
    if (old[i].key == 0) continue;
    shard.slots[Probe(shard, old[i].key, Hash(old[i].key))] = old[i];
  }
  delete[] old;
  return true;
}

bool ShardedTable::Insert(const Record& record, Record* replaced,
                          bool replace_is_release) {
  uint64_t hash = Hash(record.key);
  Shard& shard = ShardFor(hash);
  bool was_present = false;
  pthread_mutex_lock(&shard.mu);
  if ((shard.count + 1) * 2 > shard.capacity && !GrowLocked(shard)) {
    pthread_mutex_unlock(&shard.mu);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Record& slot = shard.slots[Probe(shard, record.key, hash)];
  if (slot.key == record.key) {
    was_present = true;
    if (replaced != nullptr) *replaced = slot;
    if (slot.kind != nullptr) {
      Bump((replace_is_release ? shard.released
                                : shard.replaced)[slot.kind->index]);
    }
  } else {
    ++shard.count;
  }
  slot = record;
  if (record.kind != nullptr) Bump(shard.acquired[record.kind->index]);
  pthread_mutex_unlock(&shard.mu);
  return was_present;
}

bool ShardedTable::Erase(uintptr_t key, Record* removed) {
  return EraseImpl(key, removed, /*remember=*/false, 0, 0, 0);
}

void ShardedTable::EraseSlotLocked(Shard& shard, size_t i) {
  size_t mask = shard.capacity - 1;
  // Backward-shift deletion: pull later entries of the cluster into the hole
  // when their home slot does not lie cyclically in (hole, j].
  size_t hole = i;
  size_t j = i;
  while (true) {
    j = (j + 1) & mask;
    if (shard.slots[j].key == 0) break;
    size_t home = Hash(shard.slots[j].key) & mask;
    bool home_in_range = hole <= j ? (hole < home && home <= j)
                                   : (hole < home || home <= j);
    if (!home_in_range) {
      shard.slots[hole] = shard.slots[j];
      hole = j;
    }
  }
  shard.slots[hole] = Record{};
  --shard.count;
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
  uint64_t hash = Hash(key);
  Shard& shard = ShardFor(hash);
  pthread_mutex_lock(&shard.mu);
  Record* r = FindLocked(shard, key, hash);
  if (r == nullptr) {
    pthread_mutex_unlock(&shard.mu);
    return false;
  }
  if (removed != nullptr) *removed = *r;
  if (remember) {
    ReleasedRecord& slot = shard.recent[shard.recent_next % kRecentPerShard];
    slot = ReleasedRecord{r->key,       r->kind,       r->stack_id,
                          release_stack_id, released_by, r->acquired_ns,
                          now_ns};
    ++shard.recent_next;
  }
  if (r->kind != nullptr) Bump(shard.released[r->kind->index]);
  EraseSlotLocked(shard, static_cast<size_t>(r - shard.slots));
  pthread_mutex_unlock(&shard.mu);
  return true;
}

bool ShardedTable::FindReleased(uintptr_t key, ReleasedRecord* out) {
  Shard& shard = ShardFor(Hash(key));
  bool found = false;
  pthread_mutex_lock(&shard.mu);
  uint32_t n = shard.recent_next < kRecentPerShard ? shard.recent_next
                                                   : kRecentPerShard;
  for (uint32_t i = 1; i <= n && !found; ++i) {
    const ReleasedRecord& rr =
        shard.recent[(shard.recent_next - i) % kRecentPerShard];
    if (rr.key == key) {
      *out = rr;
      found = true;
    }
  }
  pthread_mutex_unlock(&shard.mu);
  return found;
}

bool LockUnlessGivenUp(pthread_mutex_t& mu, const std::atomic<bool>& give_up) {
  for (;;) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 10000000;  // look at the flag every 10 ms
    until.tv_sec += until.tv_nsec / 1000000000;
    until.tv_nsec %= 1000000000;
    if (pthread_mutex_timedlock(&mu, &until) == 0) return true;
    if (give_up.load(std::memory_order_acquire)) return false;
  }
}

int ShardedTable::ForEach(const std::function<void(Record&)>& fn,
                          int64_t lock_deadline_ns,
                          const std::atomic<bool>* give_up) {
  int skipped = 0;
  for (Shard& shard : shards_) {
    if (lock_deadline_ns > 0) {
      // Once the deadline has passed (an interrupted thread holds a shard),
      // each remaining shard still gets a short grace: running threads let
      // go of a shard within microseconds.
      struct timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1000000000 +
                       now.tv_nsec;
      int64_t until = std::max(lock_deadline_ns, now_ns + 20000000);
      struct timespec deadline;
      deadline.tv_sec = until / 1000000000;
      deadline.tv_nsec = until % 1000000000;
      if (pthread_mutex_timedlock(&shard.mu, &deadline) != 0) {
        ++skipped;
        continue;
      }
    } else if (give_up != nullptr) {
      if (!LockUnlessGivenUp(shard.mu, *give_up)) {
        ++skipped;
        continue;
      }
    } else {
      pthread_mutex_lock(&shard.mu);
    }
    for (size_t i = 0; i < shard.capacity; ++i) {
      if (shard.slots[i].key != 0) fn(shard.slots[i]);
    }
    pthread_mutex_unlock(&shard.mu);
  }
  return skipped;
}

ShardedTable::Totals ShardedTable::GetTotals() {
  Totals totals;
  // Read without the shard locks (the exit report must not block on a lock
  // a signal-interrupted thread holds); counters are word-sized, so a value
  // read while another thread runs is at worst slightly stale.
  for (Shard& shard : shards_) {
    for (int k = 0; k < kMaxKinds; ++k) {
      totals.acquired[k] += __atomic_load_n(&shard.acquired[k], __ATOMIC_RELAXED);
      totals.released[k] += __atomic_load_n(&shard.released[k], __ATOMIC_RELAXED);
      totals.replaced[k] += __atomic_load_n(&shard.replaced[k], __ATOMIC_RELAXED);
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
  for (const Shard& shard : shards_) n += shard.capacity * sizeof(Record);
  return n;
}

void ShardedTable::LockAllForFork() {
  for (Shard& shard : shards_) pthread_mutex_lock(&shard.mu);
}

void ShardedTable::UnlockAllAfterFork() {
  for (Shard& shard : shards_) pthread_mutex_unlock(&shard.mu);
}

}  // namespace leakwatch
