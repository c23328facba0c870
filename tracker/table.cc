#include "tracker/table.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
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

// Locks `mu` for ForEach: unless `deadline_ns` (CLOCK_REALTIME, > 0) passes
// or `*give_up` (if set) becomes true first. Once the deadline has passed
// (an interrupted thread holds the lock), each lock still gets a short
// grace: running threads let go within microseconds.
bool LockForVisit(ShardLock& mu, int64_t deadline_ns,
                  const std::atomic<bool>* give_up) {
  if (deadline_ns > 0) {
    return mu.LockBefore(std::max(deadline_ns, WallClockNs() + 20000000));
  }
  if (give_up != nullptr) return mu.LockUnlessGivenUp(*give_up);
  mu.Lock();
  return true;
}

void DeleteSlots(uint64_t* slots, size_t size) {
  if (size * sizeof(uint64_t) < 4096) {
    delete[] slots;
  } else {
    munmap(slots, size * sizeof(uint64_t));
  }
}

}  // namespace

// --- Young records -----------------------------------------------------------

namespace young_internal {
__attribute__((tls_model("initial-exec"))) __thread YoungSlot* t_young =
    nullptr;
}  // namespace young_internal

using young_internal::kMoving;
using young_internal::kYoungReleased;
using young_internal::t_young;
using young_internal::WriteReleased;
using young_internal::YoungReleased;
using young_internal::YoungSlot;
using young_internal::YoungState;

namespace {

// Threads beyond this many use the index alone.
constexpr uint32_t kYoungSlots = 1024;
constinit YoungSlot g_young[kYoungSlots];
// Slots ever handed out (the others were never touched).
std::atomic<uint32_t> g_young_used{0};
// Held to move or take another thread's young record, to hand out or free
// a slot, and across a fork.
ShardLock g_young_mu;
uint32_t g_young_free = 0;  // slot + 1 of the first free one
pthread_key_t g_young_key;
bool g_young_key_ok = false;
pthread_once_t g_young_once = PTHREAD_ONCE_INIT;
ShardedTable* g_young_table = nullptr;

__attribute__((tls_model("initial-exec"))) __thread bool t_young_none = false;

void FreeYoungSlot(void* arg);

// Puts `y` on the free list (g_young_mu held).
void PushFreeLocked(YoungSlot& y) {
  y.in_call.store(0, std::memory_order_release);  // its thread is gone
  y.next_free = g_young_free;
  g_young_free = static_cast<uint32_t>(&y - g_young) + 1;
}

YoungSlot* TakeYoungSlot() {
  pthread_once(&g_young_once, [] {
    g_young_key_ok = pthread_key_create(&g_young_key, &FreeYoungSlot) == 0;
  });
  if (!g_young_key_ok) return nullptr;
  YoungSlot* y = nullptr;
  g_young_mu.Lock();
  if (g_young_free != 0) {
    y = &g_young[g_young_free - 1];
    g_young_free = y->next_free;
  } else {
    uint32_t used = g_young_used.load(std::memory_order_relaxed);
    if (used < kYoungSlots) {
      y = &g_young[used];
      g_young_used.store(used + 1, std::memory_order_release);
    }
  }
  g_young_mu.Unlock();
  if (y != nullptr && pthread_setspecific(g_young_key, y) != 0) {
    g_young_mu.Lock();
    PushFreeLocked(*y);
    g_young_mu.Unlock();
    y = nullptr;
  }
  return y;
}

}  // namespace

void ShardedTable::EnableYoung() {
  g_young_table = this;
  young_ = true;
}

void ShardedTable::InsertMoved(const Record& record) {
  Insert(record, nullptr, /*replace_is_release=*/false, /*count=*/false);
}

namespace {

// Moves slot `y`'s record into `table` if it holds one (g_young_mu held).
template <typename Move>
bool MoveSlotLocked(YoungSlot& y, Move&& move) {
  uintptr_t state = y.state.load(std::memory_order_acquire);
  if (state == 0 || state == kMoving) return false;
  if (!y.state.compare_exchange_strong(state, kMoving,
                                       std::memory_order_acq_rel)) {
    return false;  // the owner took it back first
  }
  Record r = y.record;
  move(r);
  y.state.store(0, std::memory_order_release);
  return true;
}

}  // namespace

Record* ShardedTable::BeginYoung(uintptr_t key) {
  if (!young_ || t_young_none) return nullptr;
  YoungSlot* y = t_young;
  if (y == nullptr) {
    y = TakeYoungSlot();
    if (y == nullptr) {
      t_young_none = true;
      return nullptr;
    }
    t_young = y;
  }
  if (y->state.load(std::memory_order_acquire) != 0) {
    // The one before is still held: into the index with it.
    g_young_mu.Lock();
    MoveSlotLocked(*y, [this](const Record& r) { InsertMoved(r); });
    g_young_mu.Unlock();
  }
  // A record of the key in the index (the one before, if it had this key:
  // an address reused without a release we saw): replaced there, by Insert.
  if (MayBePresent(key)) [[unlikely]] {
    return nullptr;
  }
  return &y->record;
}

void ShardedTable::RememberLocked(Shard& shard,
                                  const ReleasedRecord& released) {
  // In place of an earlier release of the same key, else of the set's
  // least recent; then this way becomes the set's most recent.
  const uintptr_t key = released.key;
  int s = RecentSetOf(key);
  ShardRecent& recent = RecentOf(shard);
  ReleasedRecord* set = &recent.recent[s * kRecentWays];
  uint32_t order = recent.order[s] ^ ShardRecent::kInitialOrder;
  uint32_t way = 0;
  while (way < kRecentWays && set[way].key != key) ++way;
  if (way < kRecentWays && set[way].released_ns > released.released_ns) {
    return;  // a later release of the key is there already
  }
  if (way == kRecentWays) way = order >> (2 * (kRecentWays - 1));
  set[way] = released;
  uint32_t rank = 0;
  while (((order >> (2 * rank)) & 3) != way) ++rank;
  uint32_t newer = order & ((1u << (2 * rank)) - 1);
  uint32_t older = order & ~((1u << (2 * rank + 2)) - 1);
  recent.order[s] = static_cast<uint8_t>((older | newer << 2 | way) ^
                                         ShardRecent::kInitialOrder);
}

void ShardedTable::WaitWhileMoved(const YoungSlot& y) {
  while (y.state.load(std::memory_order_acquire) == kMoving) sched_yield();
}

void ShardedTable::RememberYoungRelease(YoungSlot& y,
                                        const ReleasedRecord& released) {
  // In place of the oldest, which goes to its shard's recently released.
  const int way = static_cast<int>(y.next_evict++ % kYoungReleased);
  const ReleasedRecord& old = y.released[way].r;
  if (old.key != 0) {
    const int saved_errno = errno;  // a contended lock may nap
    Shard& shard = ShardFor(old.key);
    shard.mu.Lock();
    RememberLocked(shard, old);
    shard.mu.Unlock();
    errno = saved_errno;
  }
  WriteReleased(y.released[way], released);
}

bool ShardedTable::MoveYoungIn(uintptr_t key) {
  if (!young_ || g_young_used.load(std::memory_order_acquire) == 0) {
    return false;
  }
  const uintptr_t want = YoungState(key);
  const uint32_t used = g_young_used.load(std::memory_order_acquire);
  bool moved = false;
  g_young_mu.Lock();
  for (uint32_t i = 0; i < used && !moved; ++i) {
    if (g_young[i].state.load(std::memory_order_relaxed) != want) continue;
    moved =
        MoveSlotLocked(g_young[i], [this](const Record& r) { InsertMoved(r); });
  }
  g_young_mu.Unlock();
  // Under young_mu_ no move is half done: a record that was being moved
  // when the caller looked is in the index now. So the caller looks again,
  // whether or not one was moved here.
  return true;
}

void ShardedTable::KeysInCall(ScrubbedVector<uintptr_t>* keys) const {
  keys->clear();
  if (!young_) return;
  const uint32_t used = g_young_used.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < used; ++i) {
    const uintptr_t key = g_young[i].in_call.load(std::memory_order_acquire);
    if (key != 0) keys->push_back(key);
  }
  std::sort(keys->begin(), keys->end());
}

bool ShardedTable::InCallOnAnyThread(uintptr_t key) const {
  if (!young_ || key == 0) return false;
  const uint32_t used = g_young_used.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < used; ++i) {
    if (g_young[i].in_call.load(std::memory_order_acquire) == key) return true;
  }
  return false;
}

void ShardedTable::FindYoungReleased(uintptr_t key, ReleasedRecord* out,
                                     bool* found) const {
  const uint32_t used = g_young_used.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < used; ++i) {
    for (const YoungReleased& entry : g_young[i].released) {
      if (__atomic_load_n(&entry.r.key, __ATOMIC_RELAXED) != key) continue;
      // A consistent copy: the same even sequence before and after.
      for (int attempt = 0; attempt < 100; ++attempt) {
        const uint32_t seq = entry.seq.load(std::memory_order_acquire);
        if (seq & 1) continue;
        ReleasedRecord copy = entry.r;
        std::atomic_thread_fence(std::memory_order_acquire);
        if (entry.seq.load(std::memory_order_relaxed) != seq) continue;
        if (copy.key == key &&
            (!*found || copy.released_ns > out->released_ns)) {
          *out = copy;
          *found = true;
        }
        break;
      }
    }
  }
}

bool ShardedTable::FlushYoung(int64_t deadline_ns,
                              const std::atomic<bool>* give_up) {
  if (!young_) return true;
  const uint32_t used = g_young_used.load(std::memory_order_acquire);
  bool any = false;
  for (uint32_t i = 0; i < used && !any; ++i) {
    any = g_young[i].state.load(std::memory_order_relaxed) != 0;
  }
  if (!any) return true;
  if (!LockForVisit(g_young_mu, deadline_ns, give_up)) return false;
  for (uint32_t i = 0; i < used; ++i) {
    MoveSlotLocked(g_young[i], [this](const Record& r) { InsertMoved(r); });
  }
  g_young_mu.Unlock();
  return true;
}

void ShardedTable::AdoptYoungAfterFork() {
  if (!young_) return;
  // The other threads are gone: their records are the child's copies of
  // what they held, and their slots are free.
  const uint32_t used = g_young_used.load(std::memory_order_relaxed);
  g_young_free = 0;
  for (uint32_t i = used; i-- > 0;) {
    YoungSlot& y = g_young[i];
    if (&y == t_young) continue;
    MoveSlotLocked(y, [this](const Record& r) { InsertMoved(r); });
    for (YoungReleased& released : y.released) {
      if (released.r.key == 0) continue;
      Shard& shard = ShardFor(released.r.key);
      shard.mu.Lock();
      RememberLocked(shard, released.r);
      shard.mu.Unlock();
      WriteReleased(released, ReleasedRecord());
    }
    PushFreeLocked(y);
  }
}

namespace {

// A thread's exit (its key's destructor): its young record into the index,
// its slot free for another thread.
void FreeYoungSlot(void* arg) {
  auto* y = static_cast<YoungSlot*>(arg);
  if (t_young == y) t_young = nullptr;
  t_young_none = false;
  if (g_young_table == nullptr) return;
  g_young_mu.Lock();
  MoveSlotLocked(*y, [](const Record& r) { g_young_table->InsertMoved(r); });
  PushFreeLocked(*y);
  g_young_mu.Unlock();
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
                          bool replace_is_release, bool count) {
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
    NotePresent(shard, record.key, 1);
  }
  if (count && record.kind != nullptr) {
    Bump(shard.acquired[record.kind->index]);
  }
  shard.mu.Unlock();
  return found;
}

bool ShardedTable::Erase(uintptr_t key, Record* removed) {
  return EraseImpl(key, removed, /*remember=*/false, 0, 0, 0);
}

void ShardedTable::EraseSlotLocked(Shard& shard, size_t i) {
  uint32_t n = SlotRecord(shard.slots[i]);
  Record& r = RecordAt(shard, n);
  NotePresent(shard, r.key, -1);
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
  if (young_ && EraseOwnYoung(key, removed, remember, release_stack_id,
                              released_by, now_ns)) {
    return true;
  }
  Shard& shard = ShardFor(key);
  size_t slot;
  shard.mu.Lock();
  Record* r = FindLocked(shard, key, &slot);
  if (r == nullptr) {
    shard.mu.Unlock();
    // Another thread's young record (released here, or moved in a moment
    // ago): once in the index, erased from there.
    if (!MoveYoungIn(key)) return false;
    shard.mu.Lock();
    r = FindLocked(shard, key, &slot);
    if (r == nullptr) {
      shard.mu.Unlock();
      return false;
    }
  }
  if (removed != nullptr) *removed = *r;
  if (remember) {
    RememberLocked(
        shard, ReleasedRecord{r->key, r->kind, r->stack_id, release_stack_id,
                              released_by, r->acquired_ns, now_ns});
  }
  if (r->kind != nullptr) Bump(shard.released[r->kind->index]);
  EraseSlotLocked(shard, slot);
  shard.mu.Unlock();
  return true;
}

bool ShardedTable::FindReleased(uintptr_t key, ReleasedRecord* out) {
  Shard& shard = ShardFor(key);
  const ReleasedRecord* set =
      &RecentOf(shard).recent[RecentSetOf(key) * kRecentWays];
  bool found = false;
  shard.mu.Lock();
  for (int way = 0; way < kRecentWays && !found; ++way) {
    if (set[way].key == key) {
      *out = set[way];
      found = true;
    }
  }
  shard.mu.Unlock();
  if (young_) FindYoungReleased(key, out, &found);
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
  // The young records are visited in the index (those not yet moved when
  // the lock could not be had are not visited).
  if (!FlushYoung(lock_deadline_ns, give_up)) ++skipped;
  for (Shard& shard : shards_) {
    if (!LockForVisit(shard.mu, lock_deadline_ns, give_up)) {
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
  if (young_) {
    g_young_mu.Lock();
    const uint32_t used = g_young_used.load(std::memory_order_relaxed);
    for (uint32_t i = 0; i < used; ++i) {
      MoveSlotLocked(g_young[i], [](const Record&) {});
      for (YoungReleased& released : g_young[i].released) {
        WriteReleased(released, ReleasedRecord());
      }
    }
    g_young_mu.Unlock();
  }
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
    for (uint16_t& n : shard.present) __atomic_store_n(&n, 0, __ATOMIC_RELAXED);
    for (ReleasedRecord& released : RecentOf(shard).recent) {
      released = ReleasedRecord();
    }
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
  if (young_) {
    const uint32_t used = g_young_used.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < used; ++i) {
      for (int k = 0; k < kMaxKinds; ++k) {
        totals.acquired[k] +=
            __atomic_load_n(&g_young[i].acquired[k], __ATOMIC_RELAXED);
        totals.released[k] +=
            __atomic_load_n(&g_young[i].released_count[k], __ATOMIC_RELAXED);
      }
    }
  }
  return totals;
}

size_t ShardedTable::size() const {
  size_t n = 0;
  for (const Shard& shard : shards_) n += shard.count;
  if (young_) {
    const uint32_t used = g_young_used.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < used; ++i) {
      const uintptr_t state = g_young[i].state.load(std::memory_order_relaxed);
      if (state != 0 && state != kMoving) ++n;
    }
  }
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
  if (young_) g_young_mu.Lock();
  for (Shard& shard : shards_) shard.mu.Lock();
}

void ShardedTable::UnlockAllAfterFork() {
  for (Shard& shard : shards_) shard.mu.Unlock();
  if (young_) g_young_mu.Unlock();
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
