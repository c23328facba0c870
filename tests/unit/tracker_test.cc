// Tests for tracker/tracker.h: the process-wide Tracker, its scan rules and
// the exit snapshot.
//
// The Tracker is a singleton created from the environment at the first
// Tracker::Get(). The static initializer below fixes that environment for the
// whole test binary (text_report_test.cc relies on it too) before main() runs.
// The first Acquire starts the real watchdog thread, which calls Scan() and
// the sink every scan period (25 ms here), racing with the tests' own Scan()
// calls: the sink is thread-safe and the assertions count events from both.

#include "tracker/tracker.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "report/symbolizer.h"
#include "tracker/clock.h"
#include "tracker/options.h"
#include "tracker/script_stack.h"

namespace leakwatch {
namespace {

// The environment of this test binary (see the comment at the top).
constexpr int64_t kResultThresholdMs = 100;  // also stmt and thread
constexpr int64_t kConnThresholdMs = 150;
constexpr int kStackDepth = 16;

const bool g_environment_set = [] {
  for (const OptionDoc& doc : OptionDocs()) unsetenv(doc.variable);
  setenv("LEAKWATCH_THRESHOLD_MS", std::to_string(kResultThresholdMs).c_str(),
         1);
  setenv("LEAKWATCH_CONN_THRESHOLD_MS",
         std::to_string(kConnThresholdMs).c_str(), 1);
  setenv("LEAKWATCH_STACK_DEPTH", std::to_string(kStackDepth).c_str(), 1);
  return true;
}();

constexpr KindDesc kTestResult{"test.result", Family::kResult, 10};
constexpr KindDesc kTestConn{"test.conn", Family::kConn, 11, "backend_pid"};
constexpr KindDesc kTestStmt{"test.stmt", Family::kStmt, 12};
constexpr KindDesc kTestThread{"test.thread", Family::kThread, 13};
// Lives as long as its parent (like a connection's cancel handle).
constexpr KindDesc kTestCancel{"test.cancel", Family::kStmt, 14, nullptr,
                               /*lives_with_parent=*/true};
// Exists only in its parent's session (like a server-side prepared
// statement).
constexpr KindDesc kTestPrepared{"test.prepared",
                                 Family::kStmt,
                                 15,
                                 nullptr,
                                 /*lives_with_parent=*/true,
                                 /*judged_by_growth=*/false,
                                 /*ends_with_parent=*/true};

constexpr int64_t kMs = 1000000;

// A sink that keeps every event; shared by all tests and never destroyed
// (the watchdog may call it at any time).
class RecordingSink : public EventSink {
 public:
  struct Overdue {
    int64_t now_ns;
    Record record;
  };

  void OnScan(const ScanEvents& events) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Held& h : events.overdue) {
      overdue_.push_back({events.now_ns, h.record});
    }
    for (const LiveNote& n : events.notes) notes_.push_back(n);
    for (const SiteGrowth& g : events.growing) growing_.push_back(g);
    notes_dropped_ += events.notes_dropped;
    if (events.sample != nullptr) ++samples_seen_;
  }
  void OnExit(const ExitSnapshot& snapshot) override {
    std::lock_guard<std::mutex> lock(mu_);
    exits_.push_back(snapshot);
  }
  // The watchdog may be inside OnScan when a test forks.
  void PrepareFork() override { mu_.lock(); }
  void ParentAfterFork() override { mu_.unlock(); }
  void ChildAfterFork() override { mu_.unlock(); }

  std::vector<Overdue> OverdueFor(uintptr_t key) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Overdue> out;
    for (const Overdue& o : overdue_) {
      if (o.record.key == key) out.push_back(o);
    }
    return out;
  }
  size_t OverdueCount(uintptr_t key) { return OverdueFor(key).size(); }

  ScrubbedVector<LiveNote> NotesFor(uintptr_t key, LiveNote::Type type) {
    std::lock_guard<std::mutex> lock(mu_);
    ScrubbedVector<LiveNote> out;
    for (const LiveNote& n : notes_) {
      if (n.record.key == key && n.type == type) out.push_back(n);
    }
    return out;
  }
  size_t NoteCount(uintptr_t key) {
    return NotesFor(key, LiveNote::kReleased).size() +
           NotesFor(key, LiveNote::kActiveAgain).size();
  }

  // Growth warnings for the site whose oldest thread has stack `stack_id`.
  ScrubbedVector<SiteGrowth> GrowingFor(uint32_t stack_id) {
    std::lock_guard<std::mutex> lock(mu_);
    ScrubbedVector<SiteGrowth> out;
    for (const SiteGrowth& g : growing_) {
      if (g.oldest.stack_id == stack_id) out.push_back(g);
    }
    return out;
  }

  std::vector<ExitSnapshot> exits() {
    std::lock_guard<std::mutex> lock(mu_);
    return exits_;
  }
  // Scans that passed on a sample (this sink wants none).
  uint64_t samples_seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_seen_;
  }

 private:
  std::mutex mu_;
  std::vector<Overdue> overdue_;
  ScrubbedVector<LiveNote> notes_;
  ScrubbedVector<SiteGrowth> growing_;
  uint64_t notes_dropped_ = 0;
  uint64_t samples_seen_ = 0;
  std::vector<ExitSnapshot> exits_;
};

RecordingSink& Sink() {
  static RecordingSink* sink = [] {
    auto* s = new RecordingSink;
    Tracker::Get().SetSink(s);
    return s;
  }();
  return *sink;
}

Tracker& T() {
  Sink();  // installed before anything is acquired
  return Tracker::Get();
}

// A fresh fake handle address for each use.
uintptr_t NewKey() {
  static std::atomic<uintptr_t> next{0x5a0000000000};
  return next.fetch_add(0x40) + 0x40;
}

// Polls `done` (running a scan each time) until it holds or `timeout` passes.
template <typename Pred>
bool WaitFor(Pred done, std::chrono::milliseconds timeout =
                            std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return done();
    T().Scan();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

bool GetRecord(uintptr_t key, Record* out) {
  return T().table().Update(key, [&](Record& r) { *out = r; });
}

// Acquires a result and waits for it to be reported overdue; returns the
// report.
RecordingSink::Overdue AcquireAndWaitForReport(const KindDesc* kind,
                                               uintptr_t key) {
  T().Acquire(kind, key, {});
  EXPECT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }))
      << kind->name << " never reported";
  std::vector<RecordingSink::Overdue> reports = Sink().OverdueFor(key);
  return reports.empty() ? RecordingSink::Overdue{} : reports.front();
}

// Acquires a result and waits until it is reported: by then at least one
// threshold has passed and every note queued before has been passed on.
void WaitForASentinelReport() {
  uintptr_t sentinel = NewKey();
  AcquireAndWaitForReport(&kTestResult, sentinel);
  T().Release(sentinel);
}

TEST(TrackerTest, OptionsComeFromTheEnvironment) {
  const Options& o = T().options();
  EXPECT_EQ(o.ThresholdMs(Family::kResult), kResultThresholdMs);
  EXPECT_EQ(o.ThresholdMs(Family::kStmt), kResultThresholdMs);
  EXPECT_EQ(o.ThresholdMs(Family::kConn), kConnThresholdMs);
  EXPECT_EQ(o.stack_depth, kStackDepth);
  EXPECT_EQ(o.ScanPeriodMs(), kResultThresholdMs / 4);
  EXPECT_TRUE(T().Tracks(kLibPg));
  EXPECT_TRUE(T().Tracks(kLibMysql | kLibThread));
  EXPECT_EQ(&Tracker::Get(), &T());
}

TEST(TrackerTest, CurrentTidIsTheKernelTid) {
  EXPECT_EQ(Tracker::CurrentTid(), static_cast<uint32_t>(syscall(SYS_gettid)));
  uint32_t other = 0;
  std::thread([&] { other = Tracker::CurrentTid(); }).join();
  EXPECT_NE(other, 0u);
  EXPECT_NE(other, Tracker::CurrentTid());
}

TEST(TrackerTest, AcquireRecordsTheHandle) {
  uintptr_t key = NewKey();
  AcquireInfo info;
  info.parent = 0x1234;
  info.identity = {T().InternString("dbname=x"), 42};
  int64_t before = NowNs();
  T().Acquire(&kTestResult, key, info);
  int64_t after = NowNs();

  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_EQ(r.key, key);
  EXPECT_EQ(r.kind, &kTestResult);
  EXPECT_EQ(r.parent, 0x1234u);
  EXPECT_EQ(r.identity.string_id, info.identity.string_id);
  EXPECT_EQ(r.identity.detail, 42u);
  EXPECT_EQ(r.tid, Tracker::CurrentTid());
  EXPECT_GE(r.acquired_ns, before);
  EXPECT_LE(r.acquired_ns, after);
  EXPECT_EQ(r.active_ns, r.acquired_ns);
  EXPECT_NE(r.stack_id, 0u);
  EXPECT_EQ(r.flags, 0);

  EXPECT_TRUE(T().Release(key));
  EXPECT_FALSE(T().Release(key));
  EXPECT_FALSE(GetRecord(key, &r));
}

TEST(TrackerTest, ReleaseTouchSetIdentityOfUnknownHandles) {
  uintptr_t key = NewKey();
  Identity id{7, 8};
  EXPECT_FALSE(T().Release(key));
  EXPECT_FALSE(T().Touch(key, &id));
  EXPECT_EQ(id.string_id, 7u);  // untouched
  EXPECT_FALSE(T().SetIdentity(key, {1, 2}));
  EXPECT_FALSE(T().Release(0));
  EXPECT_FALSE(T().Touch(0, nullptr));
  EXPECT_FALSE(T().SetIdentity(0, {1, 2}));
}

TEST(TrackerTest, AcquireIgnoresInvalidArguments) {
  size_t size_before = T().table().size();
  uint64_t acquired_before =
      T().table().GetTotals().acquired[kTestResult.index];
  T().Acquire(&kTestResult, 0, {});
  uintptr_t key = NewKey();
  T().Acquire(nullptr, key, {});
  EXPECT_FALSE(T().Release(key));
  constexpr KindDesc kBadIndex{"test.bad", Family::kResult, kMaxKinds};
  T().Acquire(&kBadIndex, key, {});
  EXPECT_FALSE(T().Release(key));
  EXPECT_EQ(T().table().GetTotals().acquired[kTestResult.index],
            acquired_before);
  // Only this thread acquires or releases here, so the size is unchanged.
  EXPECT_EQ(T().table().size(), size_before);
}

TEST(TrackerTest, AcquireOfATrackedKeyReplacesIt) {
  uintptr_t key = NewKey();
  ShardedTable::Totals before = T().table().GetTotals();
  T().Acquire(&kTestConn, key, {});
  T().Acquire(&kTestResult, key, {{}, {0, 99}});
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_EQ(r.kind, &kTestResult);
  EXPECT_EQ(r.identity.detail, 99u);
  ShardedTable::Totals after = T().table().GetTotals();
  EXPECT_EQ(after.acquired[kTestConn.index] - before.acquired[kTestConn.index],
            1u);
  EXPECT_EQ(after.replaced[kTestConn.index] - before.replaced[kTestConn.index],
            1u);
  EXPECT_EQ(
      after.acquired[kTestResult.index] - before.acquired[kTestResult.index],
      1u);
  EXPECT_TRUE(T().Release(key));
  EXPECT_FALSE(T().Release(key));
  after = T().table().GetTotals();
  EXPECT_EQ(
      after.released[kTestResult.index] - before.released[kTestResult.index],
      1u);
}

[[gnu::noinline]] void AcquireAtSiteA(uintptr_t key) {
  T().Acquire(&kTestStmt, key, {});
  asm volatile("" ::: "memory");  // not a tail call
}
[[gnu::noinline]] void AcquireAtSiteB(uintptr_t key) {
  T().Acquire(&kTestStmt, key, {});
  asm volatile("" ::: "memory");
}

TEST(TrackerTest, StacksAreInternedPerCallSite) {
  std::vector<uintptr_t> keys;
  std::vector<uint32_t> stacks;
  for (int i = 0; i < 4; ++i) {
    keys.push_back(NewKey());
    AcquireAtSiteA(keys.back());
  }
  uintptr_t b = NewKey();
  AcquireAtSiteB(b);
  for (uintptr_t k : keys) {
    Record r;
    ASSERT_TRUE(GetRecord(k, &r));
    stacks.push_back(r.stack_id);
  }
  Record rb;
  ASSERT_TRUE(GetRecord(b, &rb));
  ASSERT_NE(stacks[0], 0u);
  for (uint32_t s : stacks) EXPECT_EQ(s, stacks[0]);
  EXPECT_NE(rb.stack_id, 0u);
  EXPECT_NE(rb.stack_id, stacks[0]);
  Depot<uintptr_t>::View frames = T().stacks().Get(stacks[0]);
  EXPECT_GT(frames.size, 3u);
  EXPECT_LE(frames.size, static_cast<uint32_t>(kStackDepth));
  Depot<uintptr_t>::View frames_b = T().stacks().Get(rb.stack_id);
  ASSERT_EQ(frames_b.size, frames.size);
  // The two stacks differ in the frame inside AcquireAtSite{A,B}, not in the
  // test's own frames further out.
  int differing = 0;
  for (uint32_t i = 0; i < frames.size; ++i) {
    if (frames.data[i] != frames_b.data[i]) ++differing;
  }
  EXPECT_GE(differing, 1);
  EXPECT_LT(differing, static_cast<int>(frames.size));
  for (uintptr_t k : keys) T().Release(k);
  T().Release(b);
}

[[gnu::noinline]] void AcquireDeep(int depth, uintptr_t key) {
  if (depth == 0) {
    T().Acquire(&kTestStmt, key, {});
  } else {
    AcquireDeep(depth - 1, key);
  }
  asm volatile("" ::: "memory");  // not a tail call
}

TEST(TrackerTest, StacksAreCutAtTheConfiguredDepth) {
  uintptr_t key = NewKey();
  AcquireDeep(2 * kStackDepth, key);
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  ASSERT_NE(r.stack_id, 0u);
  EXPECT_EQ(T().stacks().Get(r.stack_id).size,
            static_cast<uint32_t>(kStackDepth));
  T().Release(key);
}

TEST(TrackerTest, TouchAndSetIdentity) {
  uintptr_t key = NewKey();
  T().Acquire(&kTestConn, key, {});
  uint32_t sid = T().InternString("dbname=app user=app host=127.0.0.1");
  EXPECT_TRUE(T().SetIdentity(key, {sid, 4242}));
  Identity id;
  EXPECT_TRUE(T().Touch(key, &id));
  EXPECT_EQ(id.string_id, sid);
  EXPECT_EQ(id.detail, 4242u);
  EXPECT_TRUE(T().Touch(key, nullptr));

  Record before;
  ASSERT_TRUE(GetRecord(key, &before));
  // Wait for the coarse clock to move on, then touch again.
  int64_t t = NowNs();
  while (NowNs() == t) std::this_thread::yield();
  int64_t touch_time = NowNs();
  EXPECT_TRUE(T().Touch(key, nullptr));
  Record after;
  ASSERT_TRUE(GetRecord(key, &after));
  EXPECT_GE(after.active_ns, touch_time);
  EXPECT_GT(after.active_ns, before.active_ns);
  EXPECT_EQ(after.acquired_ns, before.acquired_ns);  // only activity moves
  EXPECT_TRUE(T().Release(key));
}

TEST(TrackerTest, InternString) {
  uint32_t a = T().InternString("SELECT 1");
  uint32_t b = T().InternString("SELECT 2");
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(T().InternString(std::string("SELECT ") + "1"), a);
  EXPECT_EQ(T().InternString(""), 0u);
  Depot<char>::View v = T().strings().Get(b);
  EXPECT_EQ(std::string(v.data, v.size), "SELECT 2");
}

// A result held past its threshold is reported exactly once, and never by a
// scan that came before the threshold.
TEST(TrackerTest, HeldResultIsReportedOnceAfterTheThreshold) {
  uintptr_t key = NewKey();
  int64_t t0 = NowNs();
  T().Acquire(&kTestResult, key, {});
  T().Scan();
  size_t early_reports = Sink().OverdueCount(key);
  int64_t t1 = NowNs();
  if (t1 - t0 < kResultThresholdMs * kMs) {
    EXPECT_EQ(early_reports, 0u) << "reported before its threshold";
  }

  ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }));
  for (int i = 0; i < 5; ++i) T().Scan();
  std::vector<RecordingSink::Overdue> reports = Sink().OverdueFor(key);
  ASSERT_EQ(reports.size(), 1u) << "reported more than once";
  const RecordingSink::Overdue& report = reports[0];
  EXPECT_GE(report.now_ns - report.record.acquired_ns,
            kResultThresholdMs * kMs);
  EXPECT_GE(report.now_ns, t0 + kResultThresholdMs * kMs);
  EXPECT_EQ(report.record.kind, &kTestResult);
  EXPECT_NE(report.record.stack_id, 0u);
  EXPECT_TRUE(report.record.flags & kReportedLive);
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_TRUE(r.flags & kReportedLive);
  EXPECT_TRUE(T().Release(key));
}

TEST(TrackerTest, StmtFamilyUsesHoldTime) {
  uintptr_t key = NewKey();
  RecordingSink::Overdue report = AcquireAndWaitForReport(&kTestStmt, key);
  EXPECT_GE(report.now_ns - report.record.acquired_ns,
            kResultThresholdMs * kMs);
  EXPECT_TRUE(T().Release(key));
}

// Threads have their own rules: the hold-time scan leaves them alone.
TEST(TrackerTest, ThreadFamilyIsNotReportedForHoldTime) {
  uintptr_t key = NewKey();
  T().Acquire(&kTestThread, key, {});
  WaitForASentinelReport();
  WaitForASentinelReport();  // well past the thread threshold now
  EXPECT_EQ(Sink().OverdueCount(key), 0u);
  EXPECT_TRUE(T().Release(key));
}

TEST(TrackerTest, ReleaseOfAReportedHandleYieldsOneNote) {
  uintptr_t key = NewKey();
  RecordingSink::Overdue report = AcquireAndWaitForReport(&kTestResult, key);
  int64_t before_release = NowNs();
  ASSERT_TRUE(T().Release(key));
  ASSERT_TRUE(WaitFor(
      [&] { return !Sink().NotesFor(key, LiveNote::kReleased).empty(); }));
  for (int i = 0; i < 3; ++i) T().Scan();
  ScrubbedVector<LiveNote> notes = Sink().NotesFor(key, LiveNote::kReleased);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].record.kind, &kTestResult);
  EXPECT_EQ(notes[0].record.acquired_ns, report.record.acquired_ns);
  EXPECT_GE(notes[0].at_ns, before_release);
  EXPECT_GE(notes[0].at_ns - notes[0].record.acquired_ns,
            kResultThresholdMs * kMs);
  EXPECT_TRUE(Sink().NotesFor(key, LiveNote::kActiveAgain).empty());
}

// A handle released before its threshold was never reported: nothing is said
// about it, now or later.
TEST(TrackerTest, ReleaseBeforeTheThresholdIsSilent) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    uintptr_t key = NewKey();
    int64_t t0 = NowNs();
    T().Acquire(&kTestResult, key, {});
    ASSERT_TRUE(T().Release(key));
    if (NowNs() - t0 >= kResultThresholdMs * kMs) continue;  // too slow: retry
    WaitForASentinelReport();
    EXPECT_EQ(Sink().OverdueCount(key), 0u);
    EXPECT_EQ(Sink().NoteCount(key), 0u);
    return;
  }
  FAIL() << "could not acquire and release within the threshold";
}

// Connections are reported for idle time: a touch restarts the clock.
TEST(TrackerTest, TouchResetsAConnectionsIdleTime) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    uintptr_t key = NewKey();
    int64_t t0 = NowNs();
    T().Acquire(&kTestConn, key, {});
    std::this_thread::sleep_for(
        std::chrono::milliseconds(kConnThresholdMs / 3));
    int64_t touch_start = NowNs();
    ASSERT_TRUE(T().Touch(key, nullptr));
    if (NowNs() - t0 >= kConnThresholdMs * kMs) {
      T().Release(key);  // it may have gone idle already: retry
      continue;
    }
    ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }));
    RecordingSink::Overdue report = Sink().OverdueFor(key).front();
    EXPECT_GE(report.record.active_ns, touch_start)
        << "the touch did not reset the idle time";
    EXPECT_GE(report.now_ns - report.record.active_ns, kConnThresholdMs * kMs)
        << "reported before the connection threshold";
    EXPECT_GE(report.now_ns, touch_start + kConnThresholdMs * kMs);
    EXPECT_EQ(Sink().NoteCount(key), 0u);
    EXPECT_TRUE(T().Release(key));
    return;
  }
  FAIL() << "could not touch within the connection threshold";
}

// A reported idle connection used again through a blocking call (a query
// that runs for a while): the note says how long it was idle before the
// call, not how long the call took.
TEST(TrackerTest, ReportedIdleConnectionThenABlockingCallNotesTheIdleTime) {
  uintptr_t key = NewKey();
  RecordingSink::Overdue report = AcquireAndWaitForReport(&kTestConn, key);
  const int64_t call_start = NowNs();
  ASSERT_TRUE(T().BeginCall(key));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the query
  ASSERT_TRUE(T().Touch(key, nullptr));                        // its answer
  ASSERT_TRUE(WaitFor(
      [&] { return !Sink().NotesFor(key, LiveNote::kActiveAgain).empty(); }));
  ScrubbedVector<LiveNote> notes = Sink().NotesFor(key, LiveNote::kActiveAgain);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].record.active_ns, report.record.active_ns);
  EXPECT_GE(call_start - notes[0].record.active_ns, kConnThresholdMs * kMs);
  EXPECT_TRUE(T().Release(key));
}

// A connection left alone is reported by the connection threshold, not the
// (smaller) result one.
TEST(TrackerTest, IdleConnectionUsesTheConnectionThreshold) {
  uintptr_t key = NewKey();
  RecordingSink::Overdue report = AcquireAndWaitForReport(&kTestConn, key);
  EXPECT_GE(report.now_ns - report.record.active_ns, kConnThresholdMs * kMs);
  EXPECT_TRUE(T().Release(key));
}

TEST(TrackerTest, ReportedIdleConnectionTouchedIsActiveAgain) {
  uintptr_t key = NewKey();
  RecordingSink::Overdue report = AcquireAndWaitForReport(&kTestConn, key);
  int64_t touch_time = NowNs();
  ASSERT_TRUE(T().Touch(key, nullptr));
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_FALSE(r.flags & kReportedLive);
  ASSERT_TRUE(WaitFor(
      [&] { return !Sink().NotesFor(key, LiveNote::kActiveAgain).empty(); }));
  ScrubbedVector<LiveNote> notes = Sink().NotesFor(key, LiveNote::kActiveAgain);
  ASSERT_EQ(notes.size(), 1u);
  // The note keeps the old activity time, to say how long it was idle.
  EXPECT_EQ(notes[0].record.active_ns, report.record.active_ns);
  EXPECT_GE(notes[0].at_ns, touch_time);
  EXPECT_GE(notes[0].at_ns - notes[0].record.active_ns, kConnThresholdMs * kMs);

  // Used again after an idle gap: a pooled connection now, whose rests are
  // normal. Idle again for longer than the threshold, it is not reported
  // again (it is alone at its site: no sibling keeps working without it).
  Record again;
  ASSERT_TRUE(GetRecord(key, &again));
  EXPECT_TRUE(again.flags & kReused);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(kConnThresholdMs * 3 / 2));
  WaitForASentinelReport();
  EXPECT_EQ(Sink().OverdueCount(key), 1u);
  ASSERT_TRUE(T().Release(key));
  WaitForASentinelReport();
  EXPECT_TRUE(Sink().NotesFor(key, LiveNote::kReleased).empty());
  EXPECT_EQ(Sink().NotesFor(key, LiveNote::kActiveAgain).size(), 1u);
}

// --- Activity without the shard's lock ---------------------------------------

// A connection this thread touched before is found in the thread's cache of
// records; once the watchdog reported it idle, the next touch still says it
// is active again (the cache is not a way around the verdicts).
TEST(TrackerTest, CachedConnectionReportedIdleIsStillActiveAgain) {
  uintptr_t key = NewKey();
  T().Acquire(&kTestConn, key, {});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(T().Touch(key, nullptr));
  ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }));
  ASSERT_TRUE(T().Touch(key, nullptr));
  ASSERT_TRUE(WaitFor(
      [&] { return !Sink().NotesFor(key, LiveNote::kActiveAgain).empty(); }));
  ASSERT_TRUE(T().BeginCall(key));
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_TRUE(r.flags & kInCall);
  EXPECT_TRUE(r.flags & kReused) << "used again after the idle gap";
  EXPECT_FALSE(r.flags & kReportedLive);
  ASSERT_TRUE(T().Touch(key, nullptr));
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_FALSE(r.flags & kInCall);
  EXPECT_TRUE(T().Release(key));
}

// A cached record that now holds another handle (the record was released
// and given to the next acquisition) is not touched for the old key: the
// old key is unknown, and the new handle's record is left as it was.
TEST(TrackerTest, CachedRecordReusedForAnotherHandleIsNotTouched) {
  uintptr_t key = NewKey();
  T().Acquire(&kTestConn, key, {});
  ASSERT_TRUE(T().Touch(key, nullptr));  // cached
  ASSERT_TRUE(T().BeginCall(key));       // and found there
  ASSERT_TRUE(T().Release(key));
  uintptr_t other = key + 0x10;  // the same shard: it takes the freed record
  T().Acquire(&kTestConn, other, {});
  Record before;
  ASSERT_TRUE(GetRecord(other, &before));
  EXPECT_FALSE(T().Touch(key, nullptr));
  EXPECT_FALSE(T().BeginCall(key));
  EXPECT_FALSE(T().TouchActivity(key));
  Record after;
  ASSERT_TRUE(GetRecord(other, &after));
  EXPECT_EQ(after.active_ns, before.active_ns);
  EXPECT_EQ(after.flags, before.flags);
  // The old key acquired again is tracked, and touched, as new.
  T().Acquire(&kTestConn, key, {});
  EXPECT_TRUE(T().Touch(key, nullptr, nullptr, nullptr, 42));
  uint32_t query = 0;
  EXPECT_TRUE(T().Touch(key, nullptr, nullptr, &query));
  EXPECT_EQ(query, 42u);
  EXPECT_TRUE(T().Release(key));
  EXPECT_TRUE(T().Release(other));
}

// Flags changed without the lock (the in-call bit) and under it (the
// watchdog's verdicts) never overwrite each other: threads begin and end
// calls on their own connections while another thread, under the lock,
// flips a bit of the same records and finds each flip still there when it
// comes back.
TEST(TrackerTest, LockFreeCallsLoseNoFlag) {
  constexpr int kThreads = 4;
  constexpr int kFlips = 100000;
  std::vector<uintptr_t> keys;
  for (int i = 0; i < kThreads; ++i) {
    keys.push_back(NewKey());
    T().Acquire(&kTestConn, keys.back(), {});
  }
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      bool counted = false;
      while (!stop.load(std::memory_order_relaxed)) {
        T().BeginCall(keys[t]);
        T().Touch(keys[t], nullptr);
        if (!counted) running.fetch_add(1);
        counted = true;
      }
    });
  }
  while (running.load() < kThreads) std::this_thread::yield();
  // At least kFlips flips, for at least 200 ms.
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  int lost = 0;
  for (int flip = 0; flip < kFlips || std::chrono::steady_clock::now() < until;
       ++flip) {
    const bool set = flip / kThreads % 2 == 0;  // this round sets the bit
    T().table().Update(keys[flip % kThreads], [&](Record& r) {
      if (((LoadFlags(r) & kParentGone) != 0) == set) ++lost;  // the last flip
      if (set) {
        SetFlags(r, kParentGone);
      } else {
        ClearFlags(r, kParentGone);
      }
    });
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(lost, 0);
  for (uintptr_t key : keys) {
    Record r;
    ASSERT_TRUE(GetRecord(key, &r));
    EXPECT_FALSE(r.flags & kInCall) << "every call ended";
    EXPECT_TRUE(T().Release(key));
  }
}

// Touching a reported result is not "active again": results are reported for
// hold time, which a touch does not change, so it is not reported again
// either.
TEST(TrackerTest, TouchOfAReportedResultChangesNothing) {
  uintptr_t key = NewKey();
  AcquireAndWaitForReport(&kTestResult, key);
  ASSERT_TRUE(T().Touch(key, nullptr));
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_TRUE(r.flags & kReportedLive);
  WaitForASentinelReport();
  EXPECT_EQ(Sink().OverdueCount(key), 1u);
  EXPECT_EQ(Sink().NoteCount(key), 0u);
  EXPECT_TRUE(T().Release(key));
}

// --- Blocking calls (BeginCall) --------------------------------------------

// A connection inside a long call is in use, not idle; the Touch that ends
// the call starts the idle clock.
TEST(TrackerTest, ConnectionInACallIsNotIdle) {
  uintptr_t key = NewKey();
  T().Acquire(&kTestConn, key, {});
  ASSERT_TRUE(T().BeginCall(key));
  EXPECT_FALSE(T().BeginCall(NewKey()));
  EXPECT_FALSE(T().BeginCall(0));
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_TRUE(r.flags & kInCall);
  int64_t call_start = r.active_ns;
  while (NowNs() - call_start < 2 * kConnThresholdMs * kMs) {
    WaitForASentinelReport();
  }
  EXPECT_EQ(Sink().OverdueCount(key), 0u) << "reported idle inside a call";

  int64_t touch_time = NowNs();
  ASSERT_TRUE(T().Touch(key, nullptr));
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_FALSE(r.flags & kInCall);
  ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }));
  RecordingSink::Overdue report = Sink().OverdueFor(key).front();
  EXPECT_GE(report.record.active_ns, touch_time);
  EXPECT_GE(report.now_ns - touch_time, kConnThresholdMs * kMs);
  EXPECT_EQ(Sink().NoteCount(key), 0u);
  EXPECT_TRUE(T().Release(key));
}

// Gives the calling thread a young slot (its first result), for
// BeginCallInHook's way.
void TakeAYoungSlot() {
  uintptr_t result = NewKey();
  T().Acquire(&kTestResult, result, {});
  ASSERT_TRUE(T().Release(result));
}

// Touch then BeginCallInHook at one reading of the clock: the call noted in
// the thread's young slot, not on the record (retried until both fall in
// one tick). True if it was.
bool BeginCallInTheSlot(uintptr_t key) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    if (!T().Touch(key, nullptr) || !T().BeginCallInHook(key)) return false;
    Record r;
    if (!GetRecord(key, &r)) return false;
    if (!(r.flags & kInCall)) return true;
    T().Touch(key, nullptr);  // the record's call ends; again
  }
  return false;
}

// A call begun in a hook just after activity on its connection is noted in
// the thread's young slot alone (no record is changed); the watchdog reads
// it there: the connection inside it is in use, not idle, and the Touch
// that ends the call starts the idle clock.
TEST(TrackerTest, ConnectionInACallNotedInTheThreadsSlotIsNotIdle) {
  TakeAYoungSlot();
  uintptr_t key = NewKey();
  T().Acquire(&kTestConn, key, {});
  ASSERT_TRUE(BeginCallInTheSlot(key));
  EXPECT_FALSE(T().BeginCallInHook(NewKey()));
  const int64_t call_start = NowNs();
  while (NowNs() - call_start < 2 * kConnThresholdMs * kMs) {
    WaitForASentinelReport();
  }
  EXPECT_EQ(Sink().OverdueCount(key), 0u) << "reported idle inside a call";

  const int64_t touch_time = NowNs();
  ASSERT_TRUE(T().Touch(key, nullptr));
  ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }));
  RecordingSink::Overdue report = Sink().OverdueFor(key).front();
  EXPECT_GE(report.record.active_ns, touch_time);
  EXPECT_GE(report.now_ns - touch_time, kConnThresholdMs * kMs);
  EXPECT_TRUE(T().Release(key));
}

// A thread that ends inside such a call (it exits, its slot goes back) does
// not leave the connection in use for ever: it is found idle.
TEST(TrackerTest, CallNotedInTheSlotOfAThreadThatExitedIsOver) {
  uintptr_t key = NewKey();
  T().Acquire(&kTestConn, key, {});
  bool begun = false;
  std::thread caller([&] {
    TakeAYoungSlot();
    begun = BeginCallInTheSlot(key);
  });
  caller.join();
  ASSERT_TRUE(begun);
  EXPECT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }))
      << "still in a call after its thread exited";
  EXPECT_TRUE(T().Release(key));
}

// Calls are about idle time: a result (hold-time rule) is reported when held
// past its threshold whether or not a call on it is in progress. (Scan's
// first pass skips in-call records only for idle-time families; its second
// pass must agree.)
TEST(TrackerTest, CallDoesNotExemptAHoldTimeHandle) {
  uintptr_t key = NewKey();
  T().Acquire(&kTestResult, key, {});
  ASSERT_TRUE(T().BeginCall(key));
  EXPECT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; },
                      std::chrono::milliseconds(10 * kResultThresholdMs)))
      << "a result in a call was never reported for its hold time";
  EXPECT_TRUE(T().Release(key));
}

// --- Handles that live with their parent (lives_with_parent) ----------------

TEST(TrackerTest, HandleLivingWithItsParentIsQuietWhileTheParentLives) {
  uintptr_t parent = NewKey(), child = NewKey(), orphan = NewKey(),
            untracked_parent = NewKey();
  T().Acquire(&kTestConn, parent, {});
  T().Acquire(&kTestCancel, child, {parent, {}});
  T().Acquire(&kTestCancel, orphan, {0, {}});  // no parent: a normal handle
  T().Acquire(&kTestCancel, untracked_parent, {NewKey(), {}});
  Record r;
  ASSERT_TRUE(GetRecord(child, &r));
  int64_t acquired = r.acquired_ns;
  ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(orphan) >= 1; }));
  ASSERT_TRUE(
      WaitFor([&] { return Sink().OverdueCount(untracked_parent) >= 1; }));
  while (NowNs() - acquired < 2 * kResultThresholdMs * kMs) {
    WaitForASentinelReport();
  }
  EXPECT_EQ(Sink().OverdueCount(child), 0u)
      << "reported while its parent is still tracked";
  T().Release(orphan);
  T().Release(untracked_parent);
  T().Release(child);
  T().Release(parent);
}

// Once the parent is gone the handle is reported only if it outlives the
// parent by the threshold (kinds.h: "only once it outlives the parent by the
// threshold"), not at the first scan after the parent's release: a driver
// that frees the cancel handle just after the connection must not get a
// warning for it.
TEST(TrackerTest, HandleLivingWithItsParentOutlivesItByTheThreshold) {
  uintptr_t parent = NewKey(), child = NewKey();
  T().Acquire(&kTestConn, parent, {});
  T().Acquire(&kTestCancel, child, {parent, {}});
  Record r;
  ASSERT_TRUE(GetRecord(child, &r));
  int64_t acquired = r.acquired_ns;
  while (NowNs() - acquired < 2 * kResultThresholdMs * kMs) {
    WaitForASentinelReport();
  }
  ASSERT_EQ(Sink().OverdueCount(child), 0u);

  int64_t parent_released = NowNs();
  ASSERT_TRUE(T().Release(parent));
  ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(child) >= 1; }));
  RecordingSink::Overdue report = Sink().OverdueFor(child).front();
  // The clock restarts at the last scan that saw the parent alive, which may
  // be up to one scan period before the release itself.
  int64_t scan_ns = T().options().ScanPeriodMs() * kMs;
  EXPECT_GE(report.now_ns - parent_released, kResultThresholdMs * kMs - scan_ns)
      << "reported " << (report.now_ns - parent_released) / kMs
      << " ms after its parent was released (threshold " << kResultThresholdMs
      << " ms, scan period " << scan_ns / kMs << " ms)";
  T().Release(child);
}

// Many handles from several threads at once: each is reported exactly once.
TEST(TrackerTest, ConcurrentAcquireFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::vector<uintptr_t>> keys(kThreads);
  for (auto& v : keys) {
    for (int i = 0; i < kPerThread; ++i) v.push_back(NewKey());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uintptr_t k : keys[t]) T().Acquire(&kTestResult, k, {});
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_TRUE(WaitFor([&] {
    for (auto& v : keys) {
      for (uintptr_t k : v) {
        if (Sink().OverdueCount(k) == 0) return false;
      }
    }
    return true;
  }));
  for (int i = 0; i < 3; ++i) T().Scan();
  for (int t = 0; t < kThreads; ++t) {
    for (uintptr_t k : keys[t]) {
      std::vector<RecordingSink::Overdue> reports = Sink().OverdueFor(k);
      ASSERT_EQ(reports.size(), 1u) << k;
      EXPECT_NE(reports[0].record.tid, Tracker::CurrentTid());
      EXPECT_TRUE(T().Release(k));
    }
  }
}

// --- Exit
// --------------------------------------------------------------------- Exit()
// happens once per process and stops the scans, so these tests run in a child
// process (a death test re-executing this binary).

#define CHILD_CHECK(cond)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #cond); \
      std::fflush(stderr);                                                    \
      _exit(1);                                                               \
    }                                                                         \
  } while (0)

const Record* FindHeld(const ExitSnapshot& s, uintptr_t key) {
  for (const Held& h : s.held) {
    const Record& r = h.record;
    if (r.key == key) return &r;
  }
  return nullptr;
}

void ExitChild() {
  uintptr_t result = NewKey(), conn = NewKey(), gone = NewKey(),
            late = NewKey();
  T().Acquire(&kTestResult, result, {});
  T().Acquire(&kTestConn, conn, {0x99, {T().InternString("dbname=a"), 5}});
  T().Acquire(&kTestResult, gone, {});
  CHILD_CHECK(T().Release(gone));
  CHILD_CHECK(Sink().exits().empty());

  T().Exit();
  std::vector<ExitSnapshot> exits = Sink().exits();
  CHILD_CHECK(exits.size() == 1);
  const ExitSnapshot& s = exits[0];
  const Record* r = FindHeld(s, result);
  const Record* c = FindHeld(s, conn);
  CHILD_CHECK(r != nullptr);
  CHILD_CHECK(c != nullptr);
  CHILD_CHECK(FindHeld(s, gone) == nullptr);
  CHILD_CHECK(s.held.size() == 2);
  CHILD_CHECK(r->kind == &kTestResult);
  CHILD_CHECK(c->kind == &kTestConn);
  CHILD_CHECK(c->parent == 0x99);
  CHILD_CHECK(c->identity.detail == 5);
  CHILD_CHECK(s.now_ns >= r->acquired_ns);
  CHILD_CHECK(s.kinds[kTestResult.index] == &kTestResult);
  CHILD_CHECK(s.kinds[kTestConn.index] == &kTestConn);
  CHILD_CHECK(s.kinds[kTestStmt.index] == nullptr);
  CHILD_CHECK(s.totals.acquired[kTestResult.index] == 2);
  CHILD_CHECK(s.totals.released[kTestResult.index] == 1);
  CHILD_CHECK(s.totals.acquired[kTestConn.index] == 1);
  CHILD_CHECK(s.totals.released[kTestConn.index] == 0);
  CHILD_CHECK(s.shards_skipped == 0);
  CHILD_CHECK(s.dropped == 0);

  // A second Exit does nothing.
  T().Exit();
  CHILD_CHECK(Sink().exits().size() == 1);

  // After Exit, scans report nothing, even a handle past its threshold.
  int64_t t0 = NowNs();
  T().Acquire(&kTestResult, late, {});
  while (NowNs() - t0 < 2 * kResultThresholdMs * kMs) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  T().Scan();
  CHILD_CHECK(Sink().OverdueCount(late) == 0);
  std::fprintf(stderr, "exit-child-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TrackerExitDeathTest, ExitSnapshotsHeldHandlesOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ExitChild(), testing::ExitedWithCode(0), "exit-child-ok");
}

// Handles inherited across fork() are the parent's business: the child's
// exit snapshot leaves them out.
void ForkChild() {
  uintptr_t parents = NewKey(), childs = NewKey();
  T().Acquire(&kTestResult, parents, {});
  pid_t pid = fork();
  if (pid == 0) {
    Record r;
    CHILD_CHECK(GetRecord(parents, &r));
    CHILD_CHECK(r.flags & kInherited);
    T().Acquire(&kTestResult, childs, {});
    CHILD_CHECK(GetRecord(childs, &r));
    CHILD_CHECK(!(r.flags & kInherited));
    CHILD_CHECK(r.tid == static_cast<uint32_t>(syscall(SYS_gettid)));
    T().Exit();
    std::vector<ExitSnapshot> exits = Sink().exits();
    CHILD_CHECK(exits.size() == 1);
    CHILD_CHECK(FindHeld(exits[0], childs) != nullptr);
    CHILD_CHECK(FindHeld(exits[0], parents) == nullptr);
    _exit(0);
  }
  CHILD_CHECK(pid > 0);
  int status = 0;
  CHILD_CHECK(waitpid(pid, &status, 0) == pid);
  CHILD_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // The parent's own records are untouched by the child.
  Record r;
  CHILD_CHECK(GetRecord(parents, &r));
  CHILD_CHECK(!(r.flags & kInherited));
  std::fprintf(stderr, "fork-child-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TrackerExitDeathTest, ForkedChildLeavesInheritedHandlesOut) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ForkChild(), testing::ExitedWithCode(0), "fork-child-ok");
}

// --- samples
// ------------------------------------------------------------------

// A sink that wants samples of the sites it names; keeps the last sample of
// a scan and the exit snapshot's.
class SampleSink : public EventSink {
 public:
  explicit SampleSink(std::vector<uint64_t> sites) : sites_(std::move(sites)) {}
  bool WantsSamples() const override { return true; }
  bool WantsSampleAt(int64_t) const override {
    if (!due_.load()) return false;
    asked_.fetch_add(1);
    return true;
  }
  int SampleSites(uint64_t* keys) const override {
    std::copy(sites_.begin(), sites_.end(), keys);
    return static_cast<int>(sites_.size());
  }
  void OnScan(const ScanEvents& events) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (events.sample == nullptr) return;
    last_ = *events.sample;
    ++samples_;
  }
  void OnExit(const ExitSnapshot& snapshot) override {
    std::lock_guard<std::mutex> lock(mu_);
    exit_sampled_ = snapshot.sampled;
    exit_ = snapshot.sample;
  }
  void PrepareFork() override { mu_.lock(); }
  void ParentAfterFork() override { mu_.unlock(); }
  void ChildAfterFork() override { mu_.unlock(); }

  OpenSample last() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }
  uint64_t samples() {
    std::lock_guard<std::mutex> lock(mu_);
    return samples_;
  }
  // Whether the scans from now on are to count a sample.
  void set_due(bool due) { due_.store(due); }
  // How many scans were told to.
  uint64_t asked() const { return asked_.load(); }
  bool exit_sampled() {
    std::lock_guard<std::mutex> lock(mu_);
    return exit_sampled_;
  }
  OpenSample exit_sample() {
    std::lock_guard<std::mutex> lock(mu_);
    return exit_;
  }

 private:
  const std::vector<uint64_t> sites_;
  std::atomic<bool> due_{true};
  mutable std::atomic<uint64_t> asked_{0};
  std::mutex mu_;
  OpenSample last_;
  uint64_t samples_ = 0;
  bool exit_sampled_ = false;
  OpenSample exit_;
};

uint64_t SiteOf(const KindDesc* kind, uint32_t stack_id) {
  return (uint64_t{kind->index} << 32) | stack_id;
}

// Scans until the last sample of `sink` has these counts (the watchdog's own
// scans race with ours: a scan already running makes ours do nothing), or 5
// s pass. `sites`: the count of each site asked for, in order.
bool WaitForSample(SampleSink& sink, uint64_t results, uint64_t conns,
                   const std::vector<uint64_t>& sites) {
  auto matches = [&] {
    OpenSample s = sink.last();
    if (s.open[kTestResult.index] != results ||
        s.open[kTestConn.index] != conns ||
        s.num_sites != static_cast<int>(sites.size())) {
      return false;
    }
    for (size_t i = 0; i < sites.size(); ++i) {
      if (s.site_open[i] != sites[i]) return false;
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    Tracker::Get().Scan();
    if (matches()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// A sink that wants samples gets one with every scan, counting what is held
// now per kind (kinds seen, as MetricsSnapshot::open) and per site asked
// for; the exit snapshot carries one too; a forked child counts only its
// own handles.
void SampleChild() {
  Tracker& t = Tracker::Get();
  uintptr_t frames_a[] = {0x5a11, 0x5a12}, frames_b[] = {0x5b11, 0x5b12};
  const uint32_t a = t.stacks().Put(frames_a, 2);
  const uint32_t b = t.stacks().Put(frames_b, 2);
  CHILD_CHECK(a != 0 && b != 0 && a != b);
  // Results and connections from stack a, statements never; the result
  // site twice (counted once).
  SampleSink sink({SiteOf(&kTestResult, a), SiteOf(&kTestConn, a),
                   SiteOf(&kTestStmt, a), SiteOf(&kTestResult, a),
                   SiteOf(&kTestPrepared, a)});
  t.SetSink(&sink);
  AcquireInfo at_a, at_b;
  at_a.stack_id = a;
  at_b.stack_id = b;
  const uintptr_t r1 = NewKey(), r2 = NewKey(), r3 = NewKey(), r4 = NewKey(),
                  c1 = NewKey(), c2 = NewKey();
  t.Acquire(&kTestResult, r1, at_a);
  t.Acquire(&kTestResult, r2, at_a);
  t.Acquire(&kTestResult, r3, at_a);
  t.Acquire(&kTestResult, r4, at_b);
  t.Acquire(&kTestConn, c1, at_a);
  t.Acquire(&kTestConn, c2, at_a);
  CHILD_CHECK(WaitForSample(sink, 4, 2, {3, 2, 0, 0}));
  OpenSample s = sink.last();
  CHILD_CHECK(s.kinds[kTestResult.index] == &kTestResult);
  CHILD_CHECK(s.kinds[kTestConn.index] == &kTestConn);
  CHILD_CHECK(s.kinds[kTestStmt.index] == nullptr);
  CHILD_CHECK(s.site_key[0] == SiteOf(&kTestResult, a));
  CHILD_CHECK(s.site_key[1] == SiteOf(&kTestConn, a));
  CHILD_CHECK(s.site_key[2] == SiteOf(&kTestStmt, a));

  CHILD_CHECK(t.Release(r1));
  CHILD_CHECK(t.Release(c1));
  CHILD_CHECK(WaitForSample(sink, 3, 1, {2, 1, 0, 0}));

  // Scans at which the sink wants no sample count none (the table is
  // walked for the rules alone).
  sink.set_due(false);
  // Every scan told to passes its sample on (a watchdog scan may be on it).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (sink.samples() != sink.asked()) {
    CHILD_CHECK(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const uint64_t samples = sink.samples();
  for (int i = 0; i < 5; ++i) {  // ours, and the watchdog's meanwhile
    t.Scan();
    std::this_thread::sleep_for(
        std::chrono::milliseconds(kResultThresholdMs / 4));
  }
  CHILD_CHECK(sink.asked() == samples && sink.samples() == samples);
  sink.set_due(true);

  pid_t pid = fork();
  if (pid == 0) {
    // The parent's handles are inherited, not counted; the child's own are.
    bool ok = WaitForSample(sink, 0, 0, {0, 0, 0, 0});
    t.Acquire(&kTestResult, NewKey(), at_a);
    ok = ok && WaitForSample(sink, 1, 0, {1, 0, 0, 0});
    _exit(ok ? 0 : 1);
  }
  CHILD_CHECK(pid > 0);
  int status = 0;
  CHILD_CHECK(waitpid(pid, &status, 0) == pid);
  CHILD_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // A statement of c2's session, which ends with c2, just before the exit:
  // not held at exit (as in the exit snapshot), whether or not a scan
  // dropped it from the table first.
  AcquireInfo in_c2 = at_a;
  in_c2.parent = c2;
  t.Acquire(&kTestPrepared, NewKey(), in_c2);
  CHILD_CHECK(t.Release(c2));
  t.Exit();
  CHILD_CHECK(sink.exit_sampled());
  s = sink.exit_sample();
  CHILD_CHECK(s.open[kTestResult.index] == 3);
  CHILD_CHECK(s.open[kTestConn.index] == 0);
  CHILD_CHECK(s.open[kTestPrepared.index] == 0);
  CHILD_CHECK(s.kinds[kTestConn.index] == &kTestConn);
  CHILD_CHECK(s.kinds[kTestPrepared.index] == &kTestPrepared);
  CHILD_CHECK(s.num_sites == 4);
  CHILD_CHECK(s.site_open[0] == 2 && s.site_open[1] == 0 &&
              s.site_open[2] == 0 && s.site_open[3] == 0);
  std::fprintf(stderr, "sample-child-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TrackerSampleDeathTest, ScansAndTheExitSnapshotCountWhatIsHeld) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(SampleChild(), testing::ExitedWithCode(0), "sample-child-ok");
}

TEST(TrackerTest, NoSampleForASinkThatWantsNone) {
  WaitForASentinelReport();
  EXPECT_EQ(Sink().samples_seen(), 0u);
}

// --- interpreter shutdown --------------------------------------------------

// The probe the interpose layer would give: what the test says. Only in the
// death tests' children (a shutdown, once begun, lasts).
std::atomic<int> g_probe_verdict{Tracker::kNotShutdown};
Tracker::ShutdownVerdict TestProbe() {
  return static_cast<Tracker::ShutdownVerdict>(g_probe_verdict.load());
}

// A release once the interpreter shuts down is none: the handle stays in the
// exit report, flagged, without a "released" note; a result from a
// connection the script closed itself is released all the same, even when
// the connection's address holds a newer handle.
void ShutdownChild() {
  T().SetShutdownProbe(&TestProbe);
  uintptr_t conn = NewKey(), closed = NewKey(), orphan = NewKey();
  T().Acquire(&kTestConn, conn, {});
  T().Acquire(&kTestConn, closed, {});
  AcquireInfo from_closed;
  from_closed.parent = closed;
  T().Acquire(&kTestResult, orphan, from_closed);
  CHILD_CHECK(T().Release(closed));  // the script's own close
  // The closed connection's memory, reused for a later result: not the
  // orphan's connection.
  T().Acquire(&kTestResult, closed, {});
  CHILD_CHECK(T().ProbeInterpreterShutdown() == Tracker::kNotShutdown);
  g_probe_verdict = Tracker::kShutdown;
  CHILD_CHECK(T().ProbeInterpreterShutdown() == Tracker::kShutdown);
  CHILD_CHECK(T().InInterpreterShutdown());
  CHILD_CHECK(T().Release(orphan));
  CHILD_CHECK(T().Release(conn));
  // Activity now is the interpreter's: found, but not use.
  T().Exit();
  std::vector<ExitSnapshot> exits = Sink().exits();
  CHILD_CHECK(exits.size() == 1);
  const Record* held = FindHeld(exits[0], conn);
  CHILD_CHECK(held != nullptr);
  CHILD_CHECK(held->flags & kReleasedAtShutdown);
  CHILD_CHECK(FindHeld(exits[0], orphan) == nullptr);
  const Record* at_closed = FindHeld(exits[0], closed);
  CHILD_CHECK(at_closed == nullptr || at_closed->kind != &kTestConn);
  CHILD_CHECK(Sink().NoteCount(conn) == 0);
  std::fprintf(stderr, "shutdown-child-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TrackerExitDeathTest, ReleasesAtInterpreterShutdownStayHeld) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ShutdownChild(), testing::ExitedWithCode(0), "shutdown-child-ok");
}

// A tentative release (Perl leaving its main program's last scope) is the
// script's if the script does something more, the interpreter's if the exit
// comes first.
void TentativeChild() {
  T().SetShutdownProbe(&TestProbe);
  uintptr_t scoped = NewKey(), last = NewKey(), later = NewKey();
  T().Acquire(&kTestConn, scoped, {});
  T().Acquire(&kTestConn, last, {});
  g_probe_verdict = Tracker::kShutdownIfLast;
  CHILD_CHECK(T().ProbeInterpreterShutdown() == Tracker::kShutdownIfLast);
  CHILD_CHECK(T().Release(scoped, 0, /*tentative=*/true));
  // The script goes on: an acquisition outside the last scope.
  g_probe_verdict = Tracker::kNotShutdown;
  T().Acquire(&kTestConn, later, {});
  CHILD_CHECK(T().Release(later));
  g_probe_verdict = Tracker::kShutdownIfLast;
  CHILD_CHECK(T().Release(last, 0, /*tentative=*/true));
  CHILD_CHECK(!T().InInterpreterShutdown());
  T().Exit();
  std::vector<ExitSnapshot> exits = Sink().exits();
  CHILD_CHECK(exits.size() == 1);
  CHILD_CHECK(FindHeld(exits[0], scoped) == nullptr);  // confirmed released
  const Record* held = FindHeld(exits[0], last);
  CHILD_CHECK(held != nullptr);
  CHILD_CHECK(held->flags & kReleasedAtShutdown);
  std::fprintf(stderr, "tentative-child-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TrackerExitDeathTest, TentativeReleaseIsTheScriptsIfTheScriptGoesOn) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(TentativeChild(), testing::ExitedWithCode(0),
              "tentative-child-ok");
}

// In a script interpreter a result from a connection is judged with the
// connection: not warned while the connection is within its rule, however
// long it is held; one from a connection left idle is warned with it. (A
// death test: the setting lasts for the process.)
void InterpreterResultsChild() {
  T().SetShutdownProbe(&TestProbe);  // a script interpreter's
  uintptr_t busy = NewKey(), idle = NewKey(), kept = NewKey(), left = NewKey();
  T().Acquire(&kTestConn, busy, {});
  T().Acquire(&kTestConn, idle, {});
  AcquireInfo from_busy;
  from_busy.parent = busy;
  T().Acquire(&kTestResult, kept, from_busy);
  AcquireInfo from_idle;
  from_idle.parent = idle;
  T().Acquire(&kTestResult, left, from_idle);
  const int64_t t0 = NowNs();
  // Until both are warned (the connection's own warning may wait a scan for
  // its reachability verdict).
  while ((Sink().OverdueCount(left) == 0 || Sink().OverdueCount(idle) == 0) &&
         NowNs() - t0 < 10000 * kMs) {
    T().Touch(busy, nullptr);
    T().Scan();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHILD_CHECK(Sink().OverdueCount(idle) == 1);
  CHILD_CHECK(Sink().OverdueCount(left) == 1);
  CHILD_CHECK(Sink().OverdueCount(kept) == 0);
  CHILD_CHECK(NowNs() - t0 >= kConnThresholdMs * kMs);
  std::fprintf(stderr, "interpreter-results-child-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TrackerExitDeathTest,
     InAScriptInterpreterResultsAreJudgedWithTheirConnection) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(InterpreterResultsChild(), testing::ExitedWithCode(0),
              "interpreter-results-child-ok");
}

// --- threads ---------------------------------------------------------------

// Each call site below is its own creation site (stack).
__attribute__((noinline)) uintptr_t AcquireThreadAtSiteA(uint32_t serial) {
  uintptr_t key = NewKey();
  AcquireInfo info;
  info.serial = serial;
  T().Acquire(&kTestThread, key, info);
  return key;
}

__attribute__((noinline)) uintptr_t AcquireThreadAtSiteB() {
  uintptr_t key = NewKey();
  T().Acquire(&kTestThread, key, {});
  return key;
}

uint32_t StackOf(uintptr_t key) {
  Record r;
  EXPECT_TRUE(GetRecord(key, &r));
  return r.stack_id;
}

TEST(TrackerThreadTest, ExitedThreadNotJoinedIsReportedAfterTheThreshold) {
  uintptr_t key = AcquireThreadAtSiteB();
  WaitForASentinelReport();  // running past the threshold: not a leak
  EXPECT_EQ(Sink().OverdueCount(key), 0u);
  int64_t exited = NowNs();
  ASSERT_TRUE(T().MarkExited(key, exited));
  ASSERT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }));
  RecordingSink::Overdue report = Sink().OverdueFor(key).front();
  EXPECT_GE(report.now_ns - exited, kResultThresholdMs * kMs);
  EXPECT_TRUE(report.record.flags & kExited);
  EXPECT_TRUE(T().Release(key));  // joined at last
  ASSERT_TRUE(WaitFor(
      [&] { return Sink().NotesFor(key, LiveNote::kReleased).size() == 1; }));
}

TEST(TrackerThreadTest, DetachIsNotReleaseButDetachedAndExitedIs) {
  uintptr_t a = AcquireThreadAtSiteB();
  ASSERT_TRUE(T().MarkDetached(a));
  Record r;
  ASSERT_TRUE(GetRecord(a, &r));  // detached and running: still tracked
  EXPECT_TRUE(r.flags & kDetached);
  ASSERT_TRUE(T().MarkExited(a, NowNs()));
  EXPECT_FALSE(GetRecord(a, &r));  // and gone once it exits

  uintptr_t b = AcquireThreadAtSiteB();  // the other order
  ASSERT_TRUE(T().MarkExited(b, NowNs()));
  ASSERT_TRUE(GetRecord(b, &r));
  ASSERT_TRUE(T().MarkDetached(b));
  EXPECT_FALSE(GetRecord(b, &r));
}

TEST(TrackerThreadTest, JoinReleasesOnlyTheRecordItWasFor) {
  uintptr_t key = AcquireThreadAtSiteA(41);
  uint32_t serial = 0;
  ASSERT_TRUE(T().GetSerial(key, &serial));
  EXPECT_EQ(serial, 41u);
  // The pthread_t was reused by a new thread before the joiner released it.
  AcquireInfo info;
  info.serial = 42;
  T().Acquire(&kTestThread, key, info);
  EXPECT_FALSE(T().ReleaseIfSerial(key, 41));
  Record r;
  EXPECT_TRUE(GetRecord(key, &r));
  EXPECT_TRUE(T().ReleaseIfSerial(key, 42));
  EXPECT_FALSE(GetRecord(key, &r));
}

// Threads of one site created over more than the threshold keep growing:
// warned at 2, then when the count has doubled (4), not at 3.
TEST(TrackerThreadTest, GrowingSiteIsWarnedAtEachDoubling) {
  // One call line in a loop, so that every record has the same stack.
  std::vector<uintptr_t> keys;
  uint32_t site = 0;
  for (int i = 0; i < 4; ++i) {
    if (i == 1) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(kResultThresholdMs + 30));
    }
    keys.push_back(AcquireThreadAtSiteA(0));
    if (i == 0) site = StackOf(keys[0]);
    if (i == 1) {
      ASSERT_TRUE(WaitFor([&] { return Sink().GrowingFor(site).size() >= 1; }));
      ScrubbedVector<SiteGrowth> g = Sink().GrowingFor(site);
      EXPECT_EQ(g[0].count, 2u);
      EXPECT_EQ(g[0].previous, 0u);
      EXPECT_GT(g[0].span_ns, kResultThresholdMs * kMs);
      EXPECT_EQ(g[0].oldest.key, keys[0]);
    }
    if (i == 2) {  // 3 is not a doubling of 2
      WaitForASentinelReport();
      WaitForASentinelReport();
      EXPECT_EQ(Sink().GrowingFor(site).size(), 1u);
    }
  }
  ASSERT_TRUE(WaitFor([&] { return Sink().GrowingFor(site).size() >= 2; }));
  ScrubbedVector<SiteGrowth> g = Sink().GrowingFor(site);
  EXPECT_EQ(g[1].count, 4u);  // doubled
  EXPECT_EQ(g[1].previous, 2u);
  for (uintptr_t k : keys) EXPECT_TRUE(T().Release(k));
}

TEST(TrackerThreadTest, ThreadsStartedTogetherAreAPoolAtAnyCount) {
  std::vector<uintptr_t> keys;
  for (int i = 0; i < 12; ++i) keys.push_back(AcquireThreadAtSiteB());
  uint32_t site = StackOf(keys[0]);
  WaitForASentinelReport();
  WaitForASentinelReport();
  WaitForASentinelReport();  // all of them well past the threshold
  EXPECT_EQ(Sink().GrowingFor(site).size(), 0u);
  for (uintptr_t k : keys) EXPECT_EQ(Sink().OverdueCount(k), 0u);
  for (uintptr_t k : keys) EXPECT_TRUE(T().Release(k));
}

// --- Script frames (tracker/script_stack.h)
// -----------------------------------

// A fake interpreter: the lines its "script" is at, innermost first, while
// a test runs inside FakeEval on this thread.
thread_local std::vector<int> t_script_lines;
std::atomic<uintptr_t> g_fake_eval_end{0};

int FakeWalk(ScriptFrameRef* frames, int max) {
  int n = 0;
  for (int line : t_script_lines) {
    if (n == max) break;
    frames[n].code = 0x1000 + static_cast<uintptr_t>(n);
    frames[n].where = static_cast<uintptr_t>(line);
    frames[n].check = 7;
    frames[n].boundary = false;
    ++n;
  }
  errno = EBADF;  // what a reader might leave; the tracker keeps errno
  return n;
}

bool FakeDescribe(const ScriptFrameRef& frame, ScriptFrameText* out) {
  std::snprintf(out->file, sizeof(out->file), "/srv/app/fake.py");
  std::snprintf(out->function, sizeof(out->function), "f%d",
                static_cast<int>(frame.code - 0x1000));
  out->line = static_cast<int>(frame.where);
  return true;
}

[[gnu::noinline]] uintptr_t CallerPc() {
  return reinterpret_cast<uintptr_t>(__builtin_return_address(0));
}

// The "eval loop": the agent's hook (Acquire) is called from here, and the
// return address into it marks where the script frames stand.
[[gnu::noinline]] void FakeEval(uintptr_t key) {
  T().Acquire(&kTestResult, key, {});
  g_fake_eval_end.store(CallerPc());  // after the call: the range's end
}

void InstallFakeReader() {
  static ScriptReader reader = [] {
    const uintptr_t warm = NewKey();  // the tracker started (its thread)
    T().Acquire(&kTestResult, warm, {});
    T().Release(warm);
    FakeEval(0);  // learns the return address inside FakeEval
    ScriptReader r;
    r.language = "fake";
    r.walk = &FakeWalk;
    r.describe = &FakeDescribe;
    r.eval_lo[0] = reinterpret_cast<uintptr_t>(&FakeEval);
    r.eval_hi[0] = g_fake_eval_end.load();
    return r;
  }();
  T().SetScriptReader(&reader);
}

// Acquires a result while the fake script is at `lines`; its stack.
uint32_t AcquireInScript(std::vector<int> lines, uintptr_t key) {
  t_script_lines = std::move(lines);
  errno = ENOENT;
  FakeEval(key);
  EXPECT_EQ(errno, ENOENT);
  t_script_lines.clear();
  Record r;
  EXPECT_TRUE(GetRecord(key, &r));
  return r.stack_id;
}

TEST(ScriptStackTest, ScriptLinesDecideTheSite) {
  InstallFakeReader();
  const uintptr_t a1 = NewKey(), a2 = NewKey(), b = NewKey(), c = NewKey();
  const uint32_t at_12 = AcquireInScript({12, 40}, a1);
  const uint32_t at_12_again = AcquireInScript({12, 40}, a2);
  const uint32_t at_14 = AcquireInScript({14, 40}, b);
  const uint32_t native = AcquireInScript({}, c);
  EXPECT_NE(at_12, 0u);
  EXPECT_EQ(at_12, at_12_again);  // the same line (and a cached description)
  EXPECT_NE(at_12, at_14);        // two lines, two sites
  EXPECT_NE(native, at_12);

  // The script frames stand where the eval loop's native frame stood; the
  // native frames outward of it (the test's, the interpreter's module) go.
  Depot<uintptr_t>::View stack = T().stacks().Get(at_14);
  ASSERT_GE(stack.size, 2u);
  std::vector<uintptr_t> script;
  for (uint32_t i = 0; i < stack.size; ++i) {
    if (IsScriptFrame(stack.data[i])) script.push_back(stack.data[i]);
  }
  ASSERT_EQ(script.size(), 2u);
  EXPECT_TRUE(IsScriptFrame(stack.data[stack.size - 1]));
  Depot<uintptr_t>::View plain = T().stacks().Get(native);
  bool eval_seen = false;
  for (uint32_t i = 0; i < plain.size; ++i) {
    eval_seen =
        eval_seen || (plain.data[i] > reinterpret_cast<uintptr_t>(&FakeEval) &&
                      plain.data[i] < g_fake_eval_end.load());
    EXPECT_FALSE(IsScriptFrame(plain.data[i]));
  }
  EXPECT_TRUE(eval_seen);

  // At report time a script frame is its file, function and line.
  Symbolizer symbolizer;
  symbolizer.set_strings(&T().strings());
  const SymbolizedFrame& inner = symbolizer.Symbolize(script[0]);
  EXPECT_EQ(inner.script, "fake");
  EXPECT_EQ(inner.file, "/srv/app/fake.py");
  EXPECT_EQ(inner.function, "f0");
  EXPECT_EQ(inner.line, 14);
  const SymbolizedFrame& outer = symbolizer.Symbolize(script[1]);
  EXPECT_EQ(outer.function, "f1");
  EXPECT_EQ(outer.line, 40);
  for (uintptr_t k : {a1, a2, b, c}) T().Release(k);
}

// `leakwatch attach` sessions. Each test runs in a process of its own
// (ctest), so a session may forget what the process's tracker held.
TEST(TrackerSessionTest, BeginForgetsWhatWasHeldAndCountsFromThen) {
  uintptr_t held = NewKey(), released = NewKey();
  T().Acquire(&kTestResult, held, {});
  T().Acquire(&kTestConn, released, {});
  ASSERT_TRUE(T().Release(released));
  T().BeginSession(T().options());
  EXPECT_TRUE(T().InSession());
  Record r;
  EXPECT_FALSE(GetRecord(held, &r)) << "held before the session";
  // Its address may hold another handle now, acquired unseen: no misuse.
  const uint64_t misuses = T().misuse_count();
  EXPECT_FALSE(T().CheckUseMisuse(released, &kTestConn, "test"));
  EXPECT_EQ(T().misuse_count(), misuses);
  EXPECT_EQ(T().Totals().acquired[kTestResult.index], 0u);
  uintptr_t now = NewKey();
  T().Acquire(&kTestResult, now, {});
  EXPECT_TRUE(T().Release(now));
  ShardedTable::Totals totals = T().Totals();
  EXPECT_EQ(totals.acquired[kTestResult.index], 1u);
  EXPECT_EQ(totals.released[kTestResult.index], 1u);
}

TEST(TrackerSessionTest, AdoptedHandleIsHeldSinceTheSessionAndCountedApart) {
  uintptr_t key = NewKey();
  EXPECT_FALSE(T().Adopt(&kTestConn, key, {})) << "outside a session";
  T().BeginSession(T().options());
  const int64_t began = T().session_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(T().Adopt(&kTestConn, key, {}));
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_TRUE(r.flags & kAdopted);
  EXPECT_EQ(r.acquired_ns, began) << "held at least since the session began";
  EXPECT_GT(r.active_ns, began) << "in use now";
  EXPECT_NE(r.stack_id, 0u);
  ShardedTable::Totals totals = T().Totals();
  EXPECT_EQ(totals.acquired[kTestConn.index], 0u);
  EXPECT_EQ(totals.adopted[kTestConn.index], 1u);
  EXPECT_TRUE(T().Release(key));
  EXPECT_EQ(T().Totals().released[kTestConn.index], 0u)
      << "the release of an adopted handle is not one of the session's";
}

TEST(TrackerSessionTest, EndStopsTrackingAndTheWatchdogAndBeginRestarts) {
  T().BeginSession(T().options());
  EXPECT_TRUE(T().Tracks(kLibPg));
  T().Acquire(&kTestResult, NewKey(), {});  // the watchdog runs
  EXPECT_TRUE(T().EndSession(5000)) << "the watchdog stopped";
  EXPECT_FALSE(T().InSession());
  EXPECT_FALSE(T().Tracks(kLibPg));
  EXPECT_FALSE(T().Tracks(kLibThread));
  Options options = T().options();
  options.track = kLibMysql;
  T().BeginSession(options);
  EXPECT_FALSE(T().Tracks(kLibPg)) << "the new session's options";
  EXPECT_TRUE(T().Tracks(kLibMysql));
  // A new watchdog scans: a result past its threshold is reported.
  uintptr_t key = NewKey();
  T().Acquire(&kTestResult, key, {});
  EXPECT_TRUE(WaitFor([&] { return Sink().OverdueCount(key) >= 1; }));
  T().Release(key);
  EXPECT_TRUE(T().EndSession(5000));
}

TEST(ScriptStackTest, LibraryScriptsAreTheInterpretersAndPackages) {
  EXPECT_TRUE(
      IsLibraryScript("/usr/lib/python3/dist-packages/psycopg2/__init__.py"));
  EXPECT_TRUE(IsLibraryScript("/usr/lib/python3.11/threading.py"));
  EXPECT_TRUE(IsLibraryScript("<frozen importlib._bootstrap>"));
  EXPECT_TRUE(IsLibraryScript("/usr/lib/x86_64-linux-gnu/perl5/5.36/DBI.pm"));
  EXPECT_TRUE(IsLibraryScript("/usr/lib/ruby/vendor_ruby/mysql2/client.rb"));
  EXPECT_TRUE(IsLibraryScript(
      "/home/u/.pyenv/versions/3.12.1/lib/python3.12/asyncio/events.py"));
  EXPECT_FALSE(IsLibraryScript("/srv/app/users.py"));
  EXPECT_FALSE(IsLibraryScript("tests/clients/dbd_leaky.pl"));
  EXPECT_FALSE(IsLibraryScript("/home/u/libstuff/app.rb"));
}


// --- Young records (ShardedTable::BeginYoung): a thread's newest result
// kept outside the index. Every way into the table must see it. ------------

TEST(TrackerYoungTest, ReleasedByAnotherThreadWhileItsOwnerLives) {
  const uintptr_t key = NewKey();
  const ShardedTable::Totals before = T().table().GetTotals();
  std::atomic<bool> acquired{false}, done{false};
  std::thread owner([&] {
    T().Acquire(&kTestResult, key, {});
    acquired = true;
    while (!done) std::this_thread::yield();
  });
  while (!acquired) std::this_thread::yield();
  EXPECT_TRUE(T().Release(key));
  EXPECT_FALSE(T().Release(key));
  Record r;
  EXPECT_FALSE(GetRecord(key, &r));
  done = true;
  owner.join();
  const ShardedTable::Totals after = T().table().GetTotals();
  const int k = kTestResult.index;
  EXPECT_EQ(after.acquired[k] - before.acquired[k], 1u);
  EXPECT_EQ(after.released[k] - before.released[k], 1u);
}

TEST(TrackerYoungTest, SeenByLookupsAndCountedWhileYoung) {
  const uintptr_t key = NewKey();
  const size_t size_before = T().table().size();
  AcquireInfo info;
  info.identity.detail = 7;
  T().Acquire(&kTestResult, key, info);
  EXPECT_EQ(T().table().size(), size_before + 1);
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));  // moved into the index to be read
  EXPECT_EQ(r.identity.detail, 7u);
  EXPECT_TRUE(T().Ignore(key));
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_TRUE(r.flags & kIgnored);
  EXPECT_TRUE(T().Release(key));
  EXPECT_EQ(T().table().size(), size_before);
}

// In a child process: the misuse reports would stay in this one's totals.
void SecondReleaseChild() {
  // The first release stays in the thread's slot, then goes to its shard's
  // recently released when other releases push it out.
  const uintptr_t first = NewKey();
  T().Acquire(&kTestResult, first, {});
  CHILD_CHECK(T().Release(first));
  for (int i = 0; i < 20; ++i) {
    // Not in the first's set of its shard's recently released, which its
    // own releases would push it out of (as they would without young
    // records).
    uintptr_t other = NewKey();
    while (ShardedTable::RecentSetOf(other) ==
           ShardedTable::RecentSetOf(first)) {
      other = NewKey();
    }
    T().Acquire(&kTestResult, other, {});
    CHILD_CHECK(T().Release(other));
  }
  const uint64_t misuses = T().misuse_count();
  CHILD_CHECK(!T().Release(first));
  CHILD_CHECK(T().CheckReleaseMisuse(first, &kTestResult, "test_release"));
  CHILD_CHECK(T().misuse_count() == misuses + 1);
  // And from another thread, for a release still in this thread's slot.
  const uintptr_t last = NewKey();
  T().Acquire(&kTestResult, last, {});
  CHILD_CHECK(T().Release(last));
  bool found = false;
  std::thread other([&] {
    found = !T().Release(last) &&
            T().CheckReleaseMisuse(last, &kTestResult, "test_release");
  });
  other.join();
  CHILD_CHECK(found);
  std::fprintf(stderr, "second-release-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TrackerYoungDeathTest, SecondReleaseIsFoundAfterManyOthers) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(SecondReleaseChild(), testing::ExitedWithCode(0),
              "second-release-ok");
}

TEST(TrackerYoungTest, HeldByAnExitedThreadIsStillHeld) {
  // Thread after thread takes a result and exits without releasing it:
  // each is in the table afterwards, and the threads' slots are reused.
  std::vector<uintptr_t> keys(300);
  for (uintptr_t& key : keys) {
    key = NewKey();
    std::thread([key] { T().Acquire(&kTestResult, key, {}); }).join();
  }
  size_t seen = 0;
  T().table().ForEach([&](Record& r) {
    seen += std::find(keys.begin(), keys.end(), r.key) != keys.end();
  });
  EXPECT_EQ(seen, keys.size());
  for (uintptr_t key : keys) EXPECT_TRUE(T().Release(key));
}

TEST(TrackerYoungTest, MoreThreadsThanSlots) {
  // 1,100 threads alive at once, each holding a result: those without a
  // slot use the index; all are released by the main thread.
  constexpr int kThreads = 1100;
  std::vector<uintptr_t> keys(kThreads);
  for (uintptr_t& key : keys) key = NewKey();
  const ShardedTable::Totals before = T().table().GetTotals();
  std::atomic<int> acquired{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      T().Acquire(&kTestResult, keys[i], {});
      ++acquired;
      while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  while (acquired < kThreads) std::this_thread::yield();
  int released = 0;
  for (uintptr_t key : keys) released += T().Release(key);
  done = true;
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(released, kThreads);
  const ShardedTable::Totals after = T().table().GetTotals();
  const int k = kTestResult.index;
  EXPECT_EQ(after.acquired[k] - before.acquired[k], uint64_t{kThreads});
  EXPECT_EQ(after.released[k] - before.released[k], uint64_t{kThreads});
}

TEST(TrackerYoungTest, ReleasesRacingTheWatchdogsMoves) {
  // Four threads acquire and release as fast as they can while scans move
  // young records into the index: every release finds its record, none is
  // left over, and the counts add up.
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  const ShardedTable::Totals before = T().table().GetTotals();
  std::atomic<int> lost{0};
  std::atomic<bool> done{false};
  std::vector<uintptr_t> last(kThreads);
  std::thread scanner([&] {
    while (!done) T().table().ForEach([](Record&) {});
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const uintptr_t key = NewKey();
        T().Acquire(&kTestResult, key, {});
        if (!T().Release(key)) ++lost;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  done = true;
  scanner.join();
  EXPECT_EQ(lost.load(), 0);
  const ShardedTable::Totals after = T().table().GetTotals();
  const int k = kTestResult.index;
  EXPECT_EQ(after.acquired[k] - before.acquired[k],
            uint64_t{kThreads * kRounds});
  EXPECT_EQ(after.released[k] - before.released[k],
            uint64_t{kThreads * kRounds});
}


TEST(TrackerYoungTest, AcquiredAgainWithoutAReleaseReplacesTheYoungRecord) {
  // An address reused without a release the agent saw: one record, the
  // new one, counted as replaced (as in the index).
  const uintptr_t key = NewKey();
  const ShardedTable::Totals before = T().table().GetTotals();
  AcquireInfo first;
  first.identity.detail = 1;
  T().Acquire(&kTestResult, key, first);
  AcquireInfo second;
  second.identity.detail = 2;
  T().Acquire(&kTestResult, key, second);
  Record r;
  ASSERT_TRUE(GetRecord(key, &r));
  EXPECT_EQ(r.identity.detail, 2u);
  EXPECT_TRUE(T().Release(key));
  EXPECT_FALSE(GetRecord(key, &r));
  const ShardedTable::Totals after = T().table().GetTotals();
  const int k = kTestResult.index;
  EXPECT_EQ(after.acquired[k] - before.acquired[k], 2u);
  EXPECT_EQ(after.replaced[k] - before.replaced[k], 1u);
  EXPECT_EQ(after.released[k] - before.released[k], 1u);
}

}  // namespace
}  // namespace leakwatch
