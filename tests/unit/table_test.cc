// Tests for tracker/table.h: the sharded live-handle table.

#include "tracker/table.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace leakwatch {
namespace {

constexpr KindDesc kConnKind{"t.conn", Family::kConn, 1};
constexpr KindDesc kResultKind{"t.result", Family::kResult, 2};

// The table is large (64 cache-aligned shards); keep it off the stack.
std::unique_ptr<ShardedTable> NewTable() {
  return std::make_unique<ShardedTable>();
}

Record MakeRecord(uintptr_t key, const KindDesc* kind = &kResultKind,
                  uint32_t tid = 7) {
  Record r;
  r.key = key;
  r.kind = kind;
  r.acquired_ns = 1000 + static_cast<int64_t>(key % 1000);
  r.active_ns = r.acquired_ns;
  r.stack_id = 3;
  r.tid = tid;
  return r;
}

bool Contains(ShardedTable& table, uintptr_t key) {
  return table.Update(key, [](Record&) {});
}

// The tid stored for `key`, or 0 if absent.
uint32_t TidOf(ShardedTable& table, uintptr_t key) {
  uint32_t tid = 0;
  table.Update(key, [&](Record& r) { tid = r.tid; });
  return tid;
}

int ShardOf(uintptr_t key) { return ShardedTable::ShardOf(key); }

TEST(ShardedTableTest, InsertUpdateErase) {
  auto table = NewTable();
  EXPECT_EQ(table->size(), 0u);
  EXPECT_FALSE(Contains(*table, 0x1000));

  Record r = MakeRecord(0x1000, &kConnKind, 42);
  r.parent = 0x2000;
  r.identity = {5, 4242};
  Record replaced;
  replaced.tid = 99;
  EXPECT_FALSE(table->Insert(r, &replaced));
  EXPECT_EQ(replaced.tid, 99u);  // untouched when nothing was replaced
  EXPECT_EQ(table->size(), 1u);

  Record seen;
  ASSERT_TRUE(table->Update(0x1000, [&](Record& rec) { seen = rec; }));
  EXPECT_EQ(seen.key, 0x1000u);
  EXPECT_EQ(seen.kind, &kConnKind);
  EXPECT_EQ(seen.tid, 42u);
  EXPECT_EQ(seen.parent, 0x2000u);
  EXPECT_EQ(seen.identity.string_id, 5u);
  EXPECT_EQ(seen.identity.detail, 4242u);

  // Update changes the stored record.
  ASSERT_TRUE(table->Update(0x1000, [](Record& rec) {
    rec.flags |= kReportedLive;
    rec.active_ns = 123456;
  }));

  Record removed;
  ASSERT_TRUE(table->Erase(0x1000, &removed));
  EXPECT_EQ(removed.key, 0x1000u);
  EXPECT_EQ(removed.tid, 42u);
  EXPECT_EQ(removed.flags, kReportedLive);
  EXPECT_EQ(removed.active_ns, 123456);
  EXPECT_EQ(table->size(), 0u);
  EXPECT_FALSE(Contains(*table, 0x1000));
  EXPECT_FALSE(table->Erase(0x1000, &removed));
  EXPECT_EQ(table->dropped(), 0u);
}

TEST(ShardedTableTest, InsertOfAnExistingKeyReplaces) {
  auto table = NewTable();
  ASSERT_FALSE(table->Insert(MakeRecord(0xabc0, &kConnKind, 1), nullptr));
  Record replaced;
  EXPECT_TRUE(table->Insert(MakeRecord(0xabc0, &kResultKind, 2), &replaced));
  EXPECT_EQ(replaced.key, 0xabc0u);
  EXPECT_EQ(replaced.kind, &kConnKind);
  EXPECT_EQ(replaced.tid, 1u);
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(TidOf(*table, 0xabc0), 2u);
  // A null `replaced` is allowed.
  EXPECT_TRUE(table->Insert(MakeRecord(0xabc0, &kResultKind, 3), nullptr));
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(TidOf(*table, 0xabc0), 3u);

  ShardedTable::Totals totals = table->GetTotals();
  EXPECT_EQ(totals.acquired[kConnKind.index], 1u);
  EXPECT_EQ(totals.acquired[kResultKind.index], 2u);
  EXPECT_EQ(totals.replaced[kConnKind.index], 1u);  // counted for the old kind
  EXPECT_EQ(totals.replaced[kResultKind.index], 1u);
  EXPECT_EQ(totals.released[kConnKind.index], 0u);
  EXPECT_EQ(totals.released[kResultKind.index], 0u);

  Record removed;
  ASSERT_TRUE(table->Erase(0xabc0, &removed));
  EXPECT_EQ(removed.tid, 3u);
  EXPECT_EQ(table->GetTotals().released[kResultKind.index], 1u);
  EXPECT_EQ(table->size(), 0u);
}

TEST(ShardedTableTest, EraseOfAnUnknownKey) {
  auto table = NewTable();
  Record removed;
  removed.tid = 77;
  EXPECT_FALSE(table->Erase(0x5000, &removed));  // empty table
  ASSERT_FALSE(table->Insert(MakeRecord(0x5000), nullptr));
  EXPECT_FALSE(table->Erase(0x5008, &removed));  // another key
  EXPECT_FALSE(table->Erase(0x5000 + (uintptr_t{1} << 40), nullptr));
  EXPECT_EQ(removed.tid, 77u);
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(table->GetTotals().released[kResultKind.index], 0u);
  EXPECT_FALSE(table->Update(0x5008, [](Record&) { ADD_FAILURE(); }));
}

// 100,000 keys, erased in random order: the count stays right and every
// remaining key stays findable (backward-shift deletion keeps clusters whole).
TEST(ShardedTableTest, ManyKeysRandomEraseOrder) {
  constexpr size_t kCount = 100000;
  auto table = NewTable();
  std::vector<uintptr_t> keys(kCount);
  for (size_t i = 0; i < kCount; ++i) keys[i] = 0x55550000000 + i * 16;
  for (uintptr_t k : keys) {
    ASSERT_FALSE(
        table->Insert(MakeRecord(k, &kResultKind, k & 0xffff), nullptr));
  }
  EXPECT_EQ(table->size(), kCount);
  EXPECT_GE(table->bytes(), kCount * sizeof(Record));

  std::shuffle(keys.begin(), keys.end(), std::mt19937(1));
  const size_t half = kCount / 2;
  for (size_t i = 0; i < half; ++i) ASSERT_TRUE(table->Erase(keys[i], nullptr));
  EXPECT_EQ(table->size(), kCount - half);
  for (size_t i = 0; i < half; ++i)
    ASSERT_FALSE(Contains(*table, keys[i])) << i;
  for (size_t i = half; i < kCount; ++i) {
    ASSERT_EQ(TidOf(*table, keys[i]), keys[i] & 0xffff) << i;
  }
  for (size_t i = half; i < kCount; ++i)
    ASSERT_TRUE(table->Erase(keys[i], nullptr));
  EXPECT_EQ(table->size(), 0u);
  ShardedTable::Totals totals = table->GetTotals();
  EXPECT_EQ(totals.acquired[kResultKind.index], kCount);
  EXPECT_EQ(totals.released[kResultKind.index], kCount);
}

// The documented bound (table.h): per live record its Record and 8 bytes
// per index slot at no less than 3/8 load; per shard at most a 16-slot
// index's worth of rounding.
TEST(ShardedTableTest, MemoryPerRecordIsBounded) {
  constexpr size_t kPerShard = 16 * sizeof(uint64_t);
  for (size_t count : {100, 1000, 10000, 100000, 300000}) {
    auto table = NewTable();
    // Malloc-like: 160 bytes apart, in one thread's arena.
    for (size_t i = 0; i < count; ++i) {
      ASSERT_FALSE(
          table->Insert(MakeRecord(0x7f3a00000010 + i * 160), nullptr));
    }
    size_t bound = count * (sizeof(Record) + sizeof(uint64_t) * 8 / 3) +
                   ShardedTable::kShards * kPerShard;
    EXPECT_LE(table->bytes(), bound) << count;
    EXPECT_GE(table->bytes(), count * (sizeof(Record) + sizeof(uint64_t)))
        << count;
    if (count >= 100000) {  // the per-shard parts are small by then
      EXPECT_LE(table->bytes() / count, 112u) << count;
    }
  }
}

// A released record is reused: churn does not grow the table, and visiting
// skips the free records.
TEST(ShardedTableTest, ReleasedRecordsAreReused) {
  constexpr size_t kCount = 5000;
  auto table = NewTable();
  auto key = [](size_t i) { return 0x7f3a00000010 + i * 160; };
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_FALSE(table->Insert(MakeRecord(key(i)), nullptr));
  }
  size_t bytes = table->bytes();
  for (size_t i = 0; i < kCount; i += 2)
    ASSERT_TRUE(table->Erase(key(i), nullptr));
  size_t visited = 0;
  table->ForEach([&](Record& r) {
    ++visited;
    EXPECT_EQ(r.key % 320, key(1) % 320) << r.key;  // odd ones only
  });
  EXPECT_EQ(visited, kCount / 2);
  // Churn over the same keys, in another order.
  std::vector<size_t> order(kCount);
  for (size_t i = 0; i < kCount; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(5));
  for (int round = 0; round < 20; ++round) {
    for (size_t i : order) {
      if (i % 2 == 0) {
        ASSERT_FALSE(table->Insert(MakeRecord(key(i)), nullptr));
      }
    }
    for (size_t i : order) {
      if (i % 2 == 0) {
        ASSERT_TRUE(table->Erase(key(i), nullptr));
      }
    }
  }
  EXPECT_EQ(table->bytes(), bytes);
  EXPECT_EQ(table->size(), kCount / 2);
  for (size_t i = 1; i < kCount; i += 2) ASSERT_TRUE(Contains(*table, key(i)));
}

// Resident bytes of the mappings that hold [addr, addr + len) (mincore).
size_t ResidentBytes(uintptr_t addr, size_t len) {
  const uintptr_t page = 4096;
  uintptr_t begin = addr & ~(page - 1);
  size_t pages = (addr + len - begin + page - 1) / page;
  std::vector<unsigned char> in(pages);
  if (mincore(reinterpret_cast<void*>(begin), pages * page, in.data()) != 0) {
    return 0;
  }
  size_t n = 0;
  for (unsigned char c : in) n += (c & 1) * page;
  return n;
}

// After a burst is released the table gives its memory back: the records
// above the highest live one and most of the index; the live records stay
// where they are (a record never moves), reachable and intact, and the
// table takes new records again, lowest first.
TEST(ShardedTableTest, ShrinkGivesBackWhatABurstTook) {
  constexpr size_t kBurst = 200000;
  auto table = NewTable();
  auto key = [](size_t i) { return 0x7f3a00000010 + i * 160; };
  // A pool of 100 long-lived handles first, then the burst.
  for (size_t i = 0; i < 100; ++i) {
    ASSERT_FALSE(table->Insert(MakeRecord(key(i), &kConnKind), nullptr));
  }
  std::vector<Record*> where(100);
  for (size_t i = 0; i < 100; ++i) {
    table->Update(key(i), [&](Record& r) { where[i] = &r; });
  }
  for (size_t i = 100; i < 100 + kBurst; ++i) {
    ASSERT_FALSE(table->Insert(MakeRecord(key(i)), nullptr));
  }
  const size_t peak = table->bytes();
  EXPECT_GE(peak, kBurst * sizeof(Record));
  // Nothing to give while the burst is held.
  EXPECT_EQ(table->Shrink(), 0u);
  for (size_t i = 100; i < 100 + kBurst; ++i) {
    ASSERT_TRUE(table->Erase(key(i), nullptr));
  }
  const size_t given = table->Shrink();
  EXPECT_GE(given, kBurst * sizeof(Record) * 9 / 10);
  EXPECT_LE(table->bytes(),
            100 * sizeof(Record) + ShardedTable::kShards * (4096 + 128));
  EXPECT_EQ(table->Shrink(), 0u) << "a second pass finds nothing more";
  // The pages are gone from the process, not only from the count.
  size_t resident = 0;
  table->ForEachRecordMapping(
      [](uintptr_t begin, uintptr_t end, void* arg) {
        *static_cast<size_t*>(arg) += ResidentBytes(begin, end - begin);
      },
      &resident);
  EXPECT_LE(resident, size_t{ShardedTable::kShards} * 2 * 4096 + 100 * 4096);
  // The pool is untouched.
  EXPECT_EQ(table->size(), 100u);
  for (size_t i = 0; i < 100; ++i) {
    Record* r = nullptr;
    ASSERT_TRUE(table->Update(key(i), [&](Record& x) { r = &x; }));
    EXPECT_EQ(r, where[i]);
    EXPECT_EQ(r->kind, &kConnKind);
  }
  // And it takes a burst again.
  for (size_t i = 100; i < 100 + kBurst; i += 3) {
    ASSERT_FALSE(table->Insert(MakeRecord(key(i)), nullptr));
  }
  EXPECT_EQ(table->size(), 100u + (kBurst + 2) / 3);
  for (size_t i = 0; i < 100 + kBurst; ++i) {
    ASSERT_EQ(Contains(*table, key(i)), i < 100 || (i - 100) % 3 == 0) << i;
  }
}

// A live record high in a shard's pool holds the records below it; once it
// is released too, the next Shrink gives them back (Shrink looks again when
// the count changed, not only when the pool grew).
TEST(ShardedTableTest, ShrinkLooksAgainWhenTheHighestRecordGoes) {
  constexpr size_t kCount = 20000;  // 8 bytes apart: one granule, one shard
  auto table = NewTable();
  auto key = [](size_t i) { return 0x7f3a00000010 + i * 8; };
  ASSERT_EQ(ShardOf(key(0)), ShardOf(key(kCount - 1)));
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_FALSE(table->Insert(MakeRecord(key(i)), nullptr));
  }
  for (size_t i = 0; i + 1 < kCount; ++i) {
    ASSERT_TRUE(table->Erase(key(i), nullptr));
  }
  // Only the index can shrink: the last record is the highest.
  EXPECT_LE(table->Shrink(), kCount * 2 * sizeof(uint64_t));
  EXPECT_GE(table->bytes(), kCount * sizeof(Record));
  ASSERT_TRUE(table->Erase(key(kCount - 1), nullptr));
  EXPECT_GE(table->Shrink(), (kCount - 300) * sizeof(Record));
  EXPECT_LE(table->bytes(), ShardedTable::kShards * (4096 + 128));
  for (size_t i = 0; i < 100; ++i) {
    ASSERT_FALSE(table->Insert(MakeRecord(key(i)), nullptr));
  }
  EXPECT_EQ(table->size(), 100u);
}

// Up to `n` keys of recent-release set `set` in [from, from + 4096), which
// must lie in one granule (so in one shard).
std::vector<uintptr_t> KeysOfSet(uintptr_t from, int set, size_t n) {
  std::vector<uintptr_t> keys;
  EXPECT_EQ(ShardOf(from), ShardOf(from + 4095));
  for (uintptr_t k = from; keys.size() < n && k < from + 4096; k += 16) {
    if (ShardedTable::RecentSetOf(k) == set) keys.push_back(k);
  }
  return keys;
}

// The recently released: kept with their release stacks, the newest release
// of a key; a plain Erase is not kept.
TEST(ShardedTableTest, RemembersRecentReleases) {
  auto table = NewTable();
  ReleasedRecord rr;
  EXPECT_FALSE(table->FindReleased(0x4000, &rr));
  ASSERT_FALSE(table->Insert(MakeRecord(0x4000, &kConnKind, 1), nullptr));
  Record removed;
  ASSERT_TRUE(table->EraseAndRemember(0x4000, &removed, 77, 5, 9000));
  EXPECT_EQ(removed.tid, 1u);
  ASSERT_TRUE(table->FindReleased(0x4000, &rr));
  EXPECT_EQ(rr.key, 0x4000u);
  EXPECT_EQ(rr.kind, &kConnKind);
  EXPECT_EQ(rr.acquire_stack_id, 3u);
  EXPECT_EQ(rr.release_stack_id, 77u);
  EXPECT_EQ(rr.released_by, 5u);
  EXPECT_EQ(rr.acquired_ns, removed.acquired_ns);
  EXPECT_EQ(rr.released_ns, 9000);
  // Acquired and released again: the newest release is found.
  ASSERT_FALSE(table->Insert(MakeRecord(0x4000, &kResultKind, 2), nullptr));
  ASSERT_TRUE(table->EraseAndRemember(0x4000, nullptr, 78, 6, 9500));
  ASSERT_TRUE(table->FindReleased(0x4000, &rr));
  EXPECT_EQ(rr.kind, &kResultKind);
  EXPECT_EQ(rr.release_stack_id, 78u);
  // A plain Erase is not remembered; a missing key is not either.
  ASSERT_FALSE(table->Insert(MakeRecord(0x4010), nullptr));
  ASSERT_TRUE(table->Erase(0x4010, nullptr));
  EXPECT_FALSE(table->FindReleased(0x4010, &rr));
  EXPECT_FALSE(table->EraseAndRemember(0x4020, nullptr, 1, 1, 1));
  EXPECT_FALSE(table->FindReleased(0x4020, &rr));
}

// A key's release is forgotten only once kRecentWays other keys of its shard
// and set have been released after it: not by other sets' releases, nor by
// the same few keys released again and again.
TEST(ShardedTableTest, RecentReleasesEvictTheLeastRecentOfASet) {
  constexpr uintptr_t kFrom = 0x7f0000001000;  // 4 KiB in one granule
  const int set = ShardedTable::RecentSetOf(kFrom + 0x10);
  std::vector<uintptr_t> same =
      KeysOfSet(kFrom, set, 1 + ShardedTable::kRecentWays);
  ASSERT_EQ(same.size(), 1u + ShardedTable::kRecentWays);
  const uintptr_t x = same[0];
  auto table = NewTable();
  auto release = [&](uintptr_t key, uint32_t stack) {
    ASSERT_FALSE(table->Insert(MakeRecord(key), nullptr));
    ASSERT_TRUE(table->EraseAndRemember(key, nullptr, stack, 1, 1));
  };
  ReleasedRecord rr;
  release(x, 100);
  // Every other set of the shard, many times over.
  for (int round = 0; round < 10; ++round) {
    for (uintptr_t k = kFrom; k < kFrom + 4096; k += 16) {
      if (ShardedTable::RecentSetOf(k) != set) release(k, 1);
    }
  }
  ASSERT_TRUE(table->FindReleased(x, &rr));
  EXPECT_EQ(rr.release_stack_id, 100u);
  // kRecentWays - 1 other keys of the set, released again and again.
  for (int round = 0; round < 50; ++round) {
    for (int i = 1; i < ShardedTable::kRecentWays; ++i) release(same[i], 2);
  }
  ASSERT_TRUE(table->FindReleased(x, &rr));
  EXPECT_EQ(rr.release_stack_id, 100u);
  // x again: it is now the newest; then kRecentWays - 1 others keep it, one
  // more (the kRecentWays-th other key) pushes it out.
  release(x, 101);
  for (int i = 1; i < ShardedTable::kRecentWays; ++i) release(same[i], 3);
  ASSERT_TRUE(table->FindReleased(x, &rr));
  EXPECT_EQ(rr.release_stack_id, 101u);
  release(same[ShardedTable::kRecentWays], 4);
  EXPECT_FALSE(table->FindReleased(x, &rr));
  for (int i = 1; i <= ShardedTable::kRecentWays; ++i) {
    ASSERT_TRUE(table->FindReleased(same[i], &rr)) << i;
  }
}

// Mutate: the callback decides whether the record goes.
TEST(ShardedTableTest, MutateErasesWhenTheCallbackSaysSo) {
  auto table = NewTable();
  ASSERT_FALSE(table->Insert(MakeRecord(0x6000, &kConnKind, 4), nullptr));
  Record removed;
  bool erased = true;
  EXPECT_TRUE(table->Mutate(
      0x6000,
      [](Record& r) {
        r.serial = 9;
        return false;
      },
      &removed, &erased));
  EXPECT_FALSE(erased);
  EXPECT_EQ(table->size(), 1u);
  EXPECT_TRUE(table->Mutate(
      0x6000, [](Record& r) { return r.serial == 9; }, &removed, &erased));
  EXPECT_TRUE(erased);
  EXPECT_EQ(removed.tid, 4u);
  EXPECT_EQ(table->size(), 0u);
  EXPECT_EQ(table->GetTotals().released[kConnKind.index], 1u);
  EXPECT_FALSE(table->Mutate(
      0x6000,
      [](Record&) {
        ADD_FAILURE();
        return true;
      },
      &removed, &erased));
  EXPECT_FALSE(erased);
}

// Keys that are multiples of 2^40 all hash to a few home slots per shard, so
// every shard holds long collision clusters; erasing from their middles must
// not lose anything.
TEST(ShardedTableTest, CollidingKeysRandomEraseOrder) {
  constexpr size_t kCount = 8192;
  auto table = NewTable();
  std::vector<uintptr_t> keys(kCount);
  for (size_t i = 0; i < kCount; ++i) keys[i] = uintptr_t{i + 1} << 40;
  std::mt19937 rng(2);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (uintptr_t k : keys) {
    ASSERT_FALSE(table->Insert(MakeRecord(k, &kResultKind, k >> 40), nullptr));
  }
  ASSERT_EQ(table->size(), kCount);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(table->Erase(keys[i], nullptr)) << i;
    ASSERT_EQ(table->size(), kCount - i - 1);
    if (i % 256 == 0 || i + 8 > kCount) {
      for (size_t j = 0; j <= i; ++j) ASSERT_FALSE(Contains(*table, keys[j]));
      for (size_t j = i + 1; j < kCount; ++j) {
        ASSERT_EQ(TidOf(*table, keys[j]), keys[j] >> 40)
            << "key " << keys[j] << " lost after " << i + 1 << " erases";
      }
    }
  }
}

// Clusters that wrap around the end of a shard's index: keys aimed at shard 0
// with home slots near the end of a 16-slot index, inserted and erased in
// random orders.
TEST(ShardedTableTest, WrappingClustersSurviveErases) {
  std::vector<uintptr_t> pool;
  for (uintptr_t k = 1; pool.size() < 64; ++k) {
    uintptr_t key = k * 8;
    size_t home = ShardedTable::HomeSlot(key, 16);
    if (ShardOf(key) == 0 && (home >= 13 || home <= 1)) pool.push_back(key);
  }
  auto table = NewTable();
  std::mt19937 rng(3);
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::shuffle(pool.begin(), pool.end(), rng);
    // At most 8 keys: a 16-slot index does not grow below 3/4 load.
    std::vector<uintptr_t> keys(pool.begin(), pool.begin() + 2 + iteration % 7);
    for (uintptr_t k : keys)
      ASSERT_FALSE(table->Insert(MakeRecord(k), nullptr));
    std::shuffle(keys.begin(), keys.end(), rng);
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_TRUE(table->Erase(keys[i], nullptr))
          << "iteration " << iteration << " key " << i;
      for (size_t j = i + 1; j < keys.size(); ++j) {
        ASSERT_TRUE(Contains(*table, keys[j]))
            << "iteration " << iteration << ": key " << keys[j]
            << " lost after erasing " << keys[i];
      }
      ASSERT_FALSE(Contains(*table, keys[i]));
    }
    ASSERT_EQ(table->size(), 0u);
  }
}

// Random inserts, replacements, erases and updates on a small pool of
// colliding keys, checked against a std::map.
TEST(ShardedTableTest, MatchesAModelUnderRandomOperations) {
  auto table = NewTable();
  std::vector<uintptr_t> pool;
  for (uintptr_t i = 1; i <= 400; ++i) {
    // Half collide heavily (multiples of 2^44), half are ordinary pointers.
    pool.push_back(i % 2 ? i << 44 : 0x7f1200000000 + i * 48);
  }
  std::map<uintptr_t, uint32_t> model;
  std::mt19937 rng(4);
  uint32_t next_tid = 1;
  for (int op = 0; op < 60000; ++op) {
    uintptr_t key = pool[rng() % pool.size()];
    switch (rng() % 3) {
      case 0: {
        Record replaced;
        bool was =
            table->Insert(MakeRecord(key, &kConnKind, next_tid), &replaced);
        ASSERT_EQ(was, model.count(key) == 1) << op;
        if (was) {
          ASSERT_EQ(replaced.tid, model[key]) << op;
        }
        model[key] = next_tid++;
        break;
      }
      case 1: {
        Record removed;
        bool was = table->Erase(key, &removed);
        ASSERT_EQ(was, model.count(key) == 1) << op;
        if (was) {
          ASSERT_EQ(removed.tid, model[key]) << op;
        }
        model.erase(key);
        break;
      }
      case 2: {
        bool was = table->Update(key, [&](Record& r) { r.tid = next_tid; });
        ASSERT_EQ(was, model.count(key) == 1) << op;
        if (was) model[key] = next_tid;
        ++next_tid;
        break;
      }
    }
    ASSERT_EQ(table->size(), model.size()) << op;
    if (op % 1000 == 999) {
      for (uintptr_t k : pool) {
        auto it = model.find(k);
        ASSERT_EQ(TidOf(*table, k), it == model.end() ? 0u : it->second)
            << "op " << op << " key " << k;
      }
    }
  }
}

TEST(ShardedTableTest, ForEachVisitsEveryRecordOnce) {
  auto table = NewTable();
  std::set<uintptr_t> inserted;
  for (uintptr_t i = 1; i <= 10000; ++i) {
    uintptr_t key = i % 3 == 0 ? i << 36 : 0x601000 + i * 32;
    inserted.insert(key);
    ASSERT_FALSE(table->Insert(MakeRecord(key), nullptr));
  }
  std::multiset<uintptr_t> visited;
  EXPECT_EQ(table->ForEach([&](Record& r) {
    visited.insert(r.key);
    r.flags |= kInherited;  // ForEach may change records
  }),
            0);
  EXPECT_EQ(visited.size(), inserted.size());
  EXPECT_TRUE(std::equal(visited.begin(), visited.end(), inserted.begin(),
                         inserted.end()));
  for (uintptr_t key : inserted) {
    uint16_t flags = 0;
    ASSERT_TRUE(table->Update(key, [&](Record& r) { flags = r.flags; }));
    ASSERT_EQ(flags, kInherited);
  }
  // An empty table: nothing visited.
  auto empty = NewTable();
  int calls = 0;
  EXPECT_EQ(empty->ForEach([&](Record&) { ++calls; }), 0);
  EXPECT_EQ(calls, 0);
}

int64_t RealtimeNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// A deadline only limits waiting: free locks are taken even if it has passed.
TEST(ShardedTableTest, ForEachWithDeadlineAndNoContention) {
  auto table = NewTable();
  for (uintptr_t i = 1; i <= 1000; ++i) {
    ASSERT_FALSE(table->Insert(MakeRecord(i * 64), nullptr));
  }
  size_t visited = 0;
  EXPECT_EQ(table->ForEach([&](Record&) { ++visited; }, RealtimeNs() - 1000000),
            0);
  EXPECT_EQ(visited, 1000u);
}

// A shard whose lock another thread holds (here: inside Update's callback) is
// skipped once the deadline passes, and counted.
TEST(ShardedTableTest, ForEachWithDeadlineSkipsALockedShard) {
  auto table = NewTable();
  constexpr uintptr_t kHeldKey = 0x7000;
  std::set<uintptr_t> keys;
  // A quarter granule apart: 2,000 keys over 500 granules, so over every
  // shard.
  constexpr uintptr_t kStride =
      (uintptr_t{1} << ShardedTable::kGranuleBits) / 4;
  for (uintptr_t i = 1; i <= 2000; ++i)
    keys.insert(kHeldKey + (i - 1) * kStride);
  for (uintptr_t k : keys) ASSERT_FALSE(table->Insert(MakeRecord(k), nullptr));

  std::atomic<bool> holding{false};
  std::atomic<bool> release{false};
  std::thread holder([&] {
    table->Update(kHeldKey, [&](Record&) {
      holding = true;
      // Bounded, so a broken test cannot hang the suite.
      auto give_up =
          std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!release && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::yield();
      }
    });
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!holding && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(holding);

  std::set<uintptr_t> visited;
  int64_t start = RealtimeNs();
  int skipped = table->ForEach([&](Record& r) { visited.insert(r.key); },
                               start + 50 * 1000000);
  int64_t took = RealtimeNs() - start;
  release = true;
  holder.join();

  EXPECT_EQ(skipped, 1);
  EXPECT_EQ(visited.count(kHeldKey), 0u);
  EXPECT_LT(visited.size(), keys.size());
  EXPECT_GT(visited.size(), keys.size() / 2);
  EXPECT_LT(took, 5000 * 1000000LL);  // it did not wait for the holder
  // The keys not visited are exactly those of the held key's shard.
  for (uintptr_t k : keys) {
    EXPECT_EQ(visited.count(k) == 0, ShardOf(k) == ShardOf(kHeldKey)) << k;
  }

  visited.clear();
  EXPECT_EQ(table->ForEach([&](Record& r) { visited.insert(r.key); },
                           RealtimeNs() + 50 * 1000000),
            0);
  EXPECT_EQ(visited, keys);
}

// 4 threads acquire and release keys of their own range and of one shared
// range, all at once. Each thread counts what the table told it; in the end
// nothing is lost or counted twice.
TEST(ShardedTableTest, ConcurrentAcquireRelease) {
  constexpr int kThreads = 4;
  constexpr int kOps = 40000;
  constexpr uintptr_t kShared = 512;
  auto table = NewTable();
  // Net effect per shared key: +1 per insert of an absent key, -1 per erase
  // that found it. Must end as 0 or 1, matching presence.
  std::vector<std::atomic<int>> shared_net(kShared);
  struct Counts {
    uint64_t inserts = 0, replaced = 0, erased = 0;
    uint64_t wrong = 0;  // an own key found replaced or missing
  };
  std::vector<Counts> counts(kThreads);
  std::vector<std::vector<uintptr_t>> own_left(kThreads);
  std::atomic<int> ready{0};

  auto shared_key = [](uintptr_t i) {
    return (i % 2 ? (i + 1) << 42 : 0x7e0000000000 + i * 64);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      Counts& c = counts[t];
      std::vector<uintptr_t> own;  // keys of this thread currently held
      uintptr_t next_own = 0x10000000000 * (t + 1);
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      for (int op = 0; op < kOps; ++op) {
        uint32_t dice = rng() % 8;
        if (dice < 3) {  // own range: acquire a new key
          uintptr_t key = next_own += 16;
          if (table->Insert(MakeRecord(key, &kConnKind, t + 1), nullptr)) {
            ++c.replaced;
            ++c.wrong;  // a fresh key cannot be present
          }
          ++c.inserts;
          own.push_back(key);
        } else if (dice < 5 && !own.empty()) {  // own range: release one
          size_t i = rng() % own.size();
          Record removed;
          if (table->Erase(own[i], &removed)) {
            ++c.erased;
            if (removed.tid != static_cast<uint32_t>(t + 1)) ++c.wrong;
          } else {
            ++c.wrong;
          }
          own[i] = own.back();
          own.pop_back();
        } else {  // shared range: everyone races on the same keys
          uintptr_t i = rng() % kShared;
          uintptr_t key = shared_key(i);
          if (dice < 7) {
            ++c.inserts;
            if (table->Insert(MakeRecord(key, &kConnKind, 99), nullptr)) {
              ++c.replaced;
            } else {
              shared_net[i].fetch_add(1);
            }
          } else if (table->Erase(key, nullptr)) {
            ++c.erased;
            shared_net[i].fetch_sub(1);
          }
          table->Update(key, [](Record& r) { r.active_ns += 1; });
        }
      }
      own_left[t] = own;
    });
  }
  for (std::thread& th : threads) th.join();

  Counts sum;
  for (const Counts& c : counts) {
    EXPECT_EQ(c.wrong, 0u);
    sum.inserts += c.inserts;
    sum.replaced += c.replaced;
    sum.erased += c.erased;
  }
  size_t own_total = 0;
  for (int t = 0; t < kThreads; ++t) {
    own_total += own_left[t].size();
    for (uintptr_t k : own_left[t]) {
      ASSERT_EQ(TidOf(*table, k), static_cast<uint32_t>(t + 1)) << k;
    }
  }
  size_t shared_total = 0;
  for (uintptr_t i = 0; i < kShared; ++i) {
    int net = shared_net[i].load();
    ASSERT_TRUE(net == 0 || net == 1) << "shared key " << i << " net " << net;
    ASSERT_EQ(Contains(*table, shared_key(i)), net == 1) << i;
    shared_total += net;
  }
  EXPECT_EQ(table->size(), own_total + shared_total);
  EXPECT_EQ(sum.inserts - sum.erased - sum.replaced, table->size());

  ShardedTable::Totals totals = table->GetTotals();
  int k = kConnKind.index;
  EXPECT_EQ(totals.acquired[k], sum.inserts);
  EXPECT_EQ(totals.released[k], sum.erased);
  EXPECT_EQ(totals.replaced[k], sum.replaced);
  EXPECT_EQ(totals.acquired[k] - totals.released[k] - totals.replaced[k],
            table->size());

  size_t visited = 0;
  EXPECT_EQ(table->ForEach([&](Record&) { ++visited; }), 0);
  EXPECT_EQ(visited, table->size());
  EXPECT_EQ(table->dropped(), 0u);
}

// ShardLock: a waiter gets the lock once it is let go; a deadline or a
// give-up flag ends the wait without it.
TEST(ShardLockTest, WaitsGivesUpAndTimesOut) {
  ShardLock lock;
  lock.Lock();
  std::atomic<bool> give_up{false};
  std::atomic<int> state{0};  // 1: waiting, 2: gave up, 3: locked
  std::thread quitter([&] {
    state = 1;
    state = lock.LockUnlessGivenUp(give_up) ? 3 : 2;
  });
  while (state == 0) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(state.load(), 1);
  give_up = true;
  quitter.join();
  EXPECT_EQ(state.load(), 2);

  int64_t start = RealtimeNs();
  EXPECT_FALSE(lock.LockBefore(start + 30 * 1000000));
  EXPECT_GE(RealtimeNs() - start, 30 * 1000000);

  std::atomic<bool> got{false};
  std::thread waiter([&] {
    lock.Lock();
    got = true;
    lock.Unlock();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(got.load());
  lock.Unlock();
  waiter.join();
  EXPECT_TRUE(got.load());
  // Free: taken even with a deadline already past.
  EXPECT_TRUE(lock.LockBefore(RealtimeNs() - 1000000));
  lock.Unlock();
}

TEST(ShardedTableTest, LockAllForForkAndUnlock) {
  auto table = NewTable();
  ASSERT_FALSE(table->Insert(MakeRecord(0x9000), nullptr));
  table->LockAllForFork();
  // Every shard is locked: a ForEach with a deadline skips all of them.
  int skipped = -1;
  std::thread other([&] {
    skipped = table->ForEach([](Record&) {}, RealtimeNs() + 20 * 1000000);
  });
  other.join();
  table->UnlockAllAfterFork();
  EXPECT_EQ(skipped, ShardedTable::kShards);
  EXPECT_TRUE(Contains(*table, 0x9000));
}

}  // namespace
}  // namespace leakwatch
