// Tests for tracker/depot.h: interning stacks and strings, ids, concurrency.

#include "tracker/depot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace leakwatch {
namespace {

using StackDepot = Depot<uintptr_t>;
using StringDepot = Depot<char>;

// A Depot is large (its bucket array); keep it off the stack.
template <typename T>
std::unique_ptr<Depot<T>> NewDepot() {
  return std::make_unique<Depot<T>>();
}

uint32_t PutStack(StackDepot& depot, const std::vector<uintptr_t>& frames) {
  return depot.Put(frames.data(), static_cast<uint32_t>(frames.size()));
}

std::vector<uintptr_t> GetStack(const StackDepot& depot, uint32_t id) {
  StackDepot::View v = depot.Get(id);
  return std::vector<uintptr_t>(v.data, v.data + v.size);
}

uint32_t PutString(StringDepot& depot, std::string_view s) {
  return depot.Put(s.data(), static_cast<uint32_t>(s.size()));
}

std::string GetString(const StringDepot& depot, uint32_t id) {
  StringDepot::View v = depot.Get(id);
  return std::string(v.data, v.size);
}

// A distinct, deterministic stack for each `i`.
std::vector<uintptr_t> StackFor(uint32_t i) {
  std::vector<uintptr_t> frames(1 + i % 7);
  for (size_t k = 0; k < frames.size(); ++k) {
    frames[k] = 0x400000 + i * 0x40 + k;
  }
  return frames;
}

TEST(DepotTest, SameStackSameIdDifferentStackDifferentId) {
  auto depot = NewDepot<uintptr_t>();
  std::vector<uintptr_t> a = {0x401000, 0x402000, 0x403000};
  std::vector<uintptr_t> a_copy = a;  // equal contents, another buffer
  std::vector<uintptr_t> b = {0x401000, 0x402000, 0x403001};
  std::vector<uintptr_t> prefix = {0x401000, 0x402000};
  uint32_t id_a = PutStack(*depot, a);
  EXPECT_NE(id_a, 0u);
  EXPECT_EQ(PutStack(*depot, a_copy), id_a);
  EXPECT_EQ(PutStack(*depot, a), id_a);
  uint32_t id_b = PutStack(*depot, b);
  uint32_t id_prefix = PutStack(*depot, prefix);
  EXPECT_NE(id_b, 0u);
  EXPECT_NE(id_prefix, 0u);
  EXPECT_NE(id_b, id_a);
  EXPECT_NE(id_prefix, id_a);
  EXPECT_NE(id_prefix, id_b);
  EXPECT_EQ(depot->size(), 3u);
}

TEST(DepotTest, IdsAreDenseFromOne) {
  auto depot = NewDepot<uintptr_t>();
  EXPECT_EQ(depot->size(), 0u);
  for (uint32_t i = 0; i < 10; ++i) {
    EXPECT_EQ(PutStack(*depot, StackFor(i)), i + 1);
  }
  EXPECT_EQ(depot->size(), 10u);
}

TEST(DepotTest, EmptyIsIdZero) {
  auto depot = NewDepot<uintptr_t>();
  uintptr_t frame = 0x1234;
  EXPECT_EQ(depot->Put(&frame, 0), 0u);
  EXPECT_EQ(depot->Put(nullptr, 0), 0u);
  EXPECT_EQ(depot->size(), 0u);
  StackDepot::View v = depot->Get(0);
  EXPECT_EQ(v.data, nullptr);
  EXPECT_EQ(v.size, 0u);
}

TEST(DepotTest, GetReturnsTheContents) {
  auto depot = NewDepot<uintptr_t>();
  std::vector<uintptr_t> a = {0x401000, 0x402000, 0x403000};
  std::vector<uintptr_t> b = {0xdeadbeef};
  uint32_t id_a = PutStack(*depot, a);
  uint32_t id_b = PutStack(*depot, b);
  EXPECT_EQ(GetStack(*depot, id_a), a);
  EXPECT_EQ(GetStack(*depot, id_b), b);
  // The depot keeps its own copy.
  a[0] = 0;
  EXPECT_EQ(GetStack(*depot, id_a)[0], 0x401000u);
}

TEST(DepotTest, UnknownIdsGiveAnEmptyView) {
  auto depot = NewDepot<uintptr_t>();
  uint32_t id = PutStack(*depot, {0x1, 0x2});
  ASSERT_EQ(id, 1u);
  for (uint32_t bad : {2u, 3u, 4096u, 4097u, 0xffffffffu}) {
    StackDepot::View v = depot->Get(bad);
    EXPECT_EQ(v.data, nullptr) << bad;
    EXPECT_EQ(v.size, 0u) << bad;
  }
}

TEST(DepotTest, MaximumLengthStack) {
  auto depot = NewDepot<uintptr_t>();
  std::vector<uintptr_t> deep(64);
  for (size_t i = 0; i < deep.size(); ++i) deep[i] = 0x7f0000000000 + i * 13;
  uint32_t id = PutStack(*depot, deep);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(GetStack(*depot, id), deep);
}

// 20,000 entries span several 4096-entry chunks and many arenas.
TEST(DepotTest, ManyDistinctEntriesAcrossChunks) {
  constexpr uint32_t kCount = 20000;
  auto depot = NewDepot<uintptr_t>();
  std::vector<uint32_t> ids(kCount);
  std::set<uint32_t> distinct;
  for (uint32_t i = 0; i < kCount; ++i) {
    ids[i] = PutStack(*depot, StackFor(i));
    ASSERT_NE(ids[i], 0u) << i;
    distinct.insert(ids[i]);
  }
  EXPECT_EQ(distinct.size(), kCount);
  EXPECT_EQ(depot->size(), kCount);
  EXPECT_EQ(*distinct.begin(), 1u);
  EXPECT_EQ(*distinct.rbegin(), kCount);
  EXPECT_GT(depot->bytes(), 0u);
  for (uint32_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(GetStack(*depot, ids[i]), StackFor(i)) << i;
    // Putting it again finds the same entry, in a different order.
    uint32_t j = kCount - 1 - i;
    ASSERT_EQ(PutStack(*depot, StackFor(j)), ids[j]) << j;
  }
  EXPECT_EQ(depot->size(), kCount);
}

TEST(DepotTest, Strings) {
  auto depot = NewDepot<char>();
  uint32_t app = PutString(*depot, "dbname=app user=app host=127.0.0.1");
  uint32_t other = PutString(*depot, "dbname=other user=app host=127.0.0.1");
  uint32_t prefix = PutString(*depot, "dbname=app");
  uint32_t one = PutString(*depot, "x");
  ASSERT_NE(app, 0u);
  EXPECT_NE(other, app);
  EXPECT_NE(prefix, app);
  EXPECT_NE(one, 0u);
  EXPECT_EQ(
      PutString(*depot, std::string("dbname=app user=app ") + "host=127.0.0.1"),
      app);
  EXPECT_EQ(PutString(*depot, ""), 0u);
  EXPECT_EQ(GetString(*depot, app), "dbname=app user=app host=127.0.0.1");
  EXPECT_EQ(GetString(*depot, other), "dbname=other user=app host=127.0.0.1");
  EXPECT_EQ(GetString(*depot, prefix), "dbname=app");
  EXPECT_EQ(GetString(*depot, one), "x");
  EXPECT_EQ(GetString(*depot, 0), "");
  // Embedded NULs and lengths that are not a multiple of 8 are kept exactly.
  std::string with_nul("a\0b", 3);
  uint32_t nul = PutString(*depot, with_nul);
  EXPECT_NE(nul, PutString(*depot, "a"));
  EXPECT_EQ(GetString(*depot, nul), with_nul);
  EXPECT_EQ(depot->size(), 6u);
}

TEST(DepotTest, ManyStrings) {
  auto depot = NewDepot<char>();
  std::vector<std::string> texts;
  for (int i = 0; i < 5000; ++i) {
    texts.push_back("SELECT * FROM t WHERE id = " + std::to_string(i));
  }
  std::vector<uint32_t> ids;
  for (const std::string& t : texts) ids.push_back(PutString(*depot, t));
  for (size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(ids[i], i + 1);
    ASSERT_EQ(GetString(*depot, ids[i]), texts[i]);
  }
}

// Entries close to the 64 KiB arena size force new arenas mid-way.
TEST(DepotTest, LargeEntriesRollOverArenas) {
  auto depot = NewDepot<char>();
  std::vector<std::string> texts;
  for (int i = 0; i < 8; ++i) {
    texts.push_back(std::string(100 + i, 'a' + i));
    texts.push_back(std::string(30000 + i * 1000, 'A' + i));
  }
  std::vector<uint32_t> ids;
  for (const std::string& t : texts) {
    ids.push_back(PutString(*depot, t));
    ASSERT_NE(ids.back(), 0u) << t.size();
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(GetString(*depot, ids[i]), texts[i]) << i;
    EXPECT_EQ(PutString(*depot, texts[i]), ids[i]) << i;
  }
}

// 4 threads put overlapping sets in different orders, some at the same time:
// equal contents always get the same id, and the ids are exactly 1..N.
TEST(DepotTest, ConcurrentPutsAgree) {
  constexpr int kThreads = 4;
  constexpr uint32_t kPerThread = 6000;
  constexpr uint32_t kOverlap = 3000;  // thread t puts [t*3000, t*3000+6000)
  constexpr uint32_t kDistinct = kOverlap * (kThreads - 1) + kPerThread;
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    auto depot = NewDepot<uintptr_t>();
    std::vector<std::vector<uint32_t>> ids(kThreads,
                                           std::vector<uint32_t>(kDistinct, 0));
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<uint32_t> order(kPerThread);
        for (uint32_t k = 0; k < kPerThread; ++k) order[k] = t * kOverlap + k;
        std::shuffle(order.begin(), order.end(), std::mt19937(round * 100 + t));
        ready.fetch_add(1);
        while (ready.load() < kThreads) {
        }
        for (uint32_t i : order) {
          std::vector<uintptr_t> frames = StackFor(i);
          ids[t][i] = PutStack(*depot, frames);
          // Another put of the same contents, right away: the same id.
          if (PutStack(*depot, frames) != ids[t][i]) ids[t][i] = 0;
        }
      });
    }
    for (std::thread& th : threads) th.join();

    EXPECT_EQ(depot->size(), kDistinct);
    std::vector<uint32_t> id_of(kDistinct, 0);
    for (int t = 0; t < kThreads; ++t) {
      for (uint32_t k = 0; k < kPerThread; ++k) {
        uint32_t i = t * kOverlap + k;
        ASSERT_NE(ids[t][i], 0u) << "thread " << t << " entry " << i;
        if (id_of[i] == 0) id_of[i] = ids[t][i];
        ASSERT_EQ(ids[t][i], id_of[i]) << "entry " << i << " thread " << t;
      }
    }
    std::set<uint32_t> distinct(id_of.begin(), id_of.end());
    ASSERT_EQ(distinct.size(), kDistinct);
    EXPECT_EQ(*distinct.begin(), 1u);
    EXPECT_EQ(*distinct.rbegin(), kDistinct);
    for (uint32_t i = 0; i < kDistinct; ++i) {
      ASSERT_EQ(GetStack(*depot, id_of[i]), StackFor(i)) << i;
    }
  }
}

// Readers see a complete entry for any id another thread has been given.
TEST(DepotTest, ConcurrentGetOfFreshIds) {
  auto depot = NewDepot<uintptr_t>();
  constexpr uint32_t kCount = 10000;
  std::atomic<uint32_t> published{0};
  std::atomic<bool> bad{false};
  std::thread writer([&] {
    for (uint32_t i = 0; i < kCount; ++i) {
      uint32_t id = PutStack(*depot, StackFor(i));
      if (id != i + 1) bad = true;
      published.store(id, std::memory_order_release);
    }
  });
  std::thread reader([&] {
    uint32_t seen = 0;
    while (seen < kCount && !bad) {
      uint32_t id = published.load(std::memory_order_acquire);
      if (id == seen) continue;
      seen = id;
      if (GetStack(*depot, id) != StackFor(id - 1)) bad = true;
    }
  });
  writer.join();
  reader.join();
  EXPECT_FALSE(bad);
}

TEST(HashBytesTest, DependsOnEveryByteAndTheLength) {
  unsigned char buf[24] = {};
  uint64_t base = HashBytes(buf, sizeof(buf));
  for (size_t i = 0; i < sizeof(buf); ++i) {
    buf[i] = 1;
    EXPECT_NE(HashBytes(buf, sizeof(buf)), base) << i;
    buf[i] = 0;
  }
  EXPECT_NE(HashBytes(buf, 23), base);
  EXPECT_NE(HashBytes(buf, 16), HashBytes(buf, 8));
  EXPECT_EQ(HashBytes(buf, sizeof(buf)), base);
}

}  // namespace
}  // namespace leakwatch
