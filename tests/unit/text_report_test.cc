// Tests for report/reporter.h and the text renderer (report/text_report.cc):
// the words of live warnings and of the exit report; the JSON renderer's
// samples and the second, JSON log (LEAKWATCH_JSON_LOG).
//
// The reporter reads thresholds and the stats switch from the Tracker
// singleton, whose environment tracker_test.cc fixes for this binary
// (thresholds 100 ms, connections 150 ms, LEAKWATCH_STATS unset); the
// expectations below read the thresholds back from the options rather than
// repeating them.

#include "report/reporter.h"

#include <errno.h>  // program_invocation_name
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "report/log.h"
#include "report/model.h"
#include "report/render.h"
#include "tracker/clock.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

constexpr KindDesc kResult{"tr.result", Family::kResult, 0, "backend_pid"};
constexpr KindDesc kConn{"tr.conn", Family::kConn, 1, "backend_pid"};
constexpr KindDesc kStmt{"tr.stmt", Family::kStmt, 2};

constexpr int64_t kMs = 1000000;
constexpr int64_t kSec = 1000 * kMs;
constexpr int64_t kNow = 5000 * kSec;

// Functions whose addresses serve as stack frames, so the symbolizer has
// something real to describe.
[[gnu::noinline]] int FrameOne(int x) { return x + 1; }
[[gnu::noinline]] int FrameTwo(int x) { return x * 2; }
[[gnu::noinline]] int FrameThree(int x) { return x - 3; }

// A return address inside an inlined call (always_inline inlines even at
// -O0): the symbolizer expands it into two frames.
[[gnu::noinline]] uintptr_t ReturnAddressOf() {
  return reinterpret_cast<uintptr_t>(__builtin_return_address(0));
}
[[gnu::always_inline]] static inline uintptr_t CallInInlined() {
  uintptr_t pc = ReturnAddressOf();
  asm volatile("" ::: "memory");
  return pc;
}
[[gnu::noinline]] uintptr_t CallsInlined() {
  uintptr_t pc = CallInInlined();
  asm volatile("" ::: "memory");
  return pc;
}

uintptr_t Pc(int (*fn)(int), int offset) {
  return reinterpret_cast<uintptr_t>(fn) + offset;
}

// Interns a stack of `n` frames unique to `salt`; returns its id.
uint32_t PutStack(int n, int salt) {
  std::vector<uintptr_t> frames;
  int (*fns[])(int) = {FrameOne, FrameTwo, FrameThree};
  for (int i = 0; i < n; ++i) frames.push_back(Pc(fns[i % 3], 1 + salt % 4));
  frames.push_back(0x100000 + salt);  // keeps stacks of different salts apart
  return Tracker::Get().stacks().Put(frames.data(),
                                     static_cast<uint32_t>(frames.size()));
}

Record MakeRecord(const KindDesc* kind, uintptr_t key, int64_t held_ns,
                  uint32_t stack_id, uint32_t tid = 77) {
  Record r;
  r.key = key;
  r.kind = kind;
  r.acquired_ns = kNow - held_ns;
  r.active_ns = r.acquired_ns;
  r.stack_id = stack_id;
  r.tid = tid;
  r.flags = kReportedLive;
  return r;
}

// A record with the finding the tracker's rules give it at kNow.
Held Judged(const Record& r) {
  return Held{r, Tracker::Get().Judge(r, kNow, /*parent_alive=*/false)};
}
ScrubbedVector<Held> Judged(const ScrubbedVector<Record>& records) {
  ScrubbedVector<Held> out;
  for (const Record& r : records) out.push_back(Judged(r));
  return out;
}

std::string Hex(uintptr_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%lx", static_cast<unsigned long>(v));
  return buf;
}

std::string Prefix() { return "leakwatch[" + std::to_string(getpid()) + "]: "; }

std::string ThresholdText(Family family) {
  return FormatDuration(
      Tracker::Get().options().ThresholdMs(family) * kMs);
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

class TextReportTest : public testing::Test {
 protected:
  TextReportTest()
      : log_(""),
        reporter_(std::make_unique<Reporter>(Tracker::Get(), log_)) {}

  void SetUp() override {
    // The assumptions this file makes about the binary's environment.
    ASSERT_FALSE(Tracker::Get().options().stats);
    ASSERT_GT(Tracker::Get().options().ThresholdMs(Family::kResult), 0);
    ASSERT_GT(Tracker::Get().options().ThresholdMs(Family::kConn), 0);
  }

  ScanEvents Overdue(ScrubbedVector<Record> records) {
    ScanEvents events;
    events.now_ns = kNow;
    events.overdue = Judged(records);
    return events;
  }

  Log log_;  // stderr; never written by Format*
  std::unique_ptr<Reporter> reporter_;
};

// --- FormatDuration ----------------------------------------------------------

TEST(FormatDurationTest, MillisecondsBelowOneSecond) {
  EXPECT_EQ(FormatDuration(0), "0 ms");
  EXPECT_EQ(FormatDuration(999999), "0 ms");
  EXPECT_EQ(FormatDuration(1 * kMs), "1 ms");
  EXPECT_EQ(FormatDuration(250 * kMs), "250 ms");
  EXPECT_EQ(FormatDuration(250 * kMs + 999999), "250 ms");
  EXPECT_EQ(FormatDuration(999 * kMs), "999 ms");
  EXPECT_EQ(FormatDuration(-5 * kMs), "0 ms");
}

TEST(FormatDurationTest, Seconds) {
  EXPECT_EQ(FormatDuration(1000 * kMs), "1 s");
  EXPECT_EQ(FormatDuration(2000 * kMs), "2 s");
  EXPECT_EQ(FormatDuration(3600 * kSec), "3600 s");
  EXPECT_EQ(FormatDuration(1500 * kMs), "1.5 s");
  EXPECT_EQ(FormatDuration(1100 * kMs), "1.1 s");
  EXPECT_EQ(FormatDuration(7300 * kMs), "7.3 s");
  EXPECT_EQ(FormatDuration(12345 * kMs), "12.3 s");
  // Tenths are truncated, never rounded up past what was measured: a hold of
  // 1999 ms has not lasted 2 s.
  EXPECT_EQ(FormatDuration(1250 * kMs), "1.2 s");
  EXPECT_EQ(FormatDuration(1350 * kMs), "1.3 s");
  EXPECT_EQ(FormatDuration(1999 * kMs), "1.9 s");
  EXPECT_EQ(FormatDuration(10050 * kMs), "10 s");
}

// --- FormatScan --------------------------------------------------------------

TEST_F(TextReportTest, FirstWarningOfASiteCarriesItsStack) {
  uint32_t stack = PutStack(3, 1);
  uintptr_t key = 0x55d0c0de1000;
  std::string out = reporter_->FormatScan(
      Overdue({MakeRecord(&kResult, key, 1500 * kMs, stack)}));
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 5u) << out;  // the warning and 4 frames
  EXPECT_EQ(lines[0], Prefix() + "tr.result " + Hex(key) +
                          " held 1.5 s (threshold " +
                          ThresholdText(Family::kResult) +
                          ") by thread 77, acquired at (site " +
                          std::to_string(stack) + "):")
      << out;
  Depot<uintptr_t>::View frames = Tracker::Get().stacks().Get(stack);
  for (uint32_t i = 0; i < frames.size; ++i) {
    EXPECT_TRUE(StartsWith(lines[1 + i], "    #" + std::to_string(i) + " " +
                                             Hex(frames.data[i]) + " in "))
        << lines[1 + i];
  }
  EXPECT_EQ(out.back(), '\n');
}

TEST_F(TextReportTest, LaterWarningsOfASiteRefer) {
  uint32_t stack = PutStack(2, 2);
  std::string first = reporter_->FormatScan(
      Overdue({MakeRecord(&kResult, 0x1000, 2 * kSec, stack),
               MakeRecord(&kResult, 0x2000, 2 * kSec, stack)}));
  EXPECT_EQ(Count(first, "acquired at (site " + std::to_string(stack) + "):"),
            1u)
      << first;
  EXPECT_EQ(Count(first, "    #0 0x"), 1u) << first;
  EXPECT_NE(first.find(Hex(0x2000) + " held 2 s (threshold " +
                       ThresholdText(Family::kResult) +
                       ") by thread 77, acquired at site " +
                       std::to_string(stack) + " (stack shown above)\n"),
            std::string::npos)
      << first;

  // A later scan: the site has been shown.
  std::string second = reporter_->FormatScan(
      Overdue({MakeRecord(&kResult, 0x3000, 2 * kSec, stack)}));
  EXPECT_EQ(Count(second, "stack shown above"), 1u) << second;
  EXPECT_EQ(Count(second, "    #0 0x"), 0u) << second;
  EXPECT_EQ(Lines(second).size(), 1u) << second;

  // Another reporter has shown nothing yet.
  Log log("");
  Reporter other(Tracker::Get(), log);
  std::string fresh = other.FormatScan(
      Overdue({MakeRecord(&kResult, 0x3000, 2 * kSec, stack)}));
  EXPECT_EQ(Count(fresh, "acquired at (site"), 1u) << fresh;
}

TEST_F(TextReportTest, SameStackDifferentKindIsAnotherSite) {
  uint32_t stack = PutStack(2, 3);
  std::string out = reporter_->FormatScan(
      Overdue({MakeRecord(&kResult, 0x1000, 2 * kSec, stack),
               MakeRecord(&kStmt, 0x2000, 2 * kSec, stack)}));
  EXPECT_EQ(Count(out, "acquired at (site " + std::to_string(stack) + "):"), 2u)
      << out;
  EXPECT_EQ(Count(out, "stack shown above"), 0u) << out;
}

TEST_F(TextReportTest, FloodsAreSummarisedPerSitePerScan) {
  constexpr int kMax = static_cast<int>(ScanModel::kPerSitePerScan);
  uint32_t flood = PutStack(2, 4);
  uint32_t quiet = PutStack(2, 5);
  ScrubbedVector<Record> records;
  for (int i = 0; i < kMax + 4; ++i) {
    records.push_back(MakeRecord(&kResult, 0x10000 + i * 16, 2 * kSec, flood));
  }
  records.push_back(MakeRecord(&kResult, 0x90000, 2 * kSec, quiet));
  std::string out = reporter_->FormatScan(Overdue(records));
  EXPECT_EQ(Count(out, " held 2 s"), static_cast<size_t>(kMax + 1)) << out;
  EXPECT_EQ(Count(out, "... and "), 1u) << out;
  EXPECT_NE(out.find(Prefix() + "... and 4 more tr.result from site " +
                     std::to_string(flood) + " past the threshold\n"),
            std::string::npos)
      << out;
  // The first kMax of the flood are named, the rest are not.
  for (int i = 0; i < kMax + 4; ++i) {
    EXPECT_EQ(out.find(Hex(0x10000 + i * 16) + " held") != std::string::npos,
              i < kMax)
        << i;
  }
  // The quiet site, after the flood, still gets its warning and its stack.
  EXPECT_NE(out.find(Hex(0x90000) + " held"), std::string::npos);
  EXPECT_EQ(Count(out, "acquired at (site"), 2u) << out;

  // Exactly kMax in a later scan: no summary line.
  records.resize(kMax);
  out = reporter_->FormatScan(Overdue(records));
  EXPECT_EQ(Count(out, " held 2 s"), static_cast<size_t>(kMax)) << out;
  EXPECT_EQ(Count(out, "... and"), 0u) << out;
}

TEST_F(TextReportTest, RecordWithoutAStack) {
  std::string out = reporter_->FormatScan(
      Overdue({MakeRecord(&kResult, 0x1000, 2 * kSec, 0),
               MakeRecord(&kResult, 0x2000, 2 * kSec, 0)}));
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_EQ(lines[0], Prefix() + "tr.result " + Hex(0x1000) +
                          " held 2 s (threshold " +
                          ThresholdText(Family::kResult) + ") by thread 77");
  EXPECT_TRUE(StartsWith(lines[1], "    (no stack")) << lines[1];
  EXPECT_EQ(Count(out, "acquired at"), 0u) << out;
}

TEST_F(TextReportTest, IdleConnection) {
  Record r = MakeRecord(&kConn, 0xc000, 10 * kSec, 0);
  r.active_ns = kNow - 2500 * kMs;
  std::string out = reporter_->FormatScan(Overdue({r}));
  EXPECT_TRUE(StartsWith(
      out, Prefix() + "tr.conn " + Hex(0xc000) + " idle 2.5 s (threshold " +
               ThresholdText(Family::kConn) + ", held 10 s) by thread 77"))
      << out;
}

TEST_F(TextReportTest, ReleasedAndActiveAgainNotes) {
  ScanEvents events;
  events.now_ns = kNow;
  LiveNote released{LiveNote::kReleased,
                    MakeRecord(&kResult, 0xaaa0, 0, PutStack(1, 6)), kNow};
  released.record.acquired_ns = kNow - 2300 * kMs;
  LiveNote again{LiveNote::kActiveAgain, MakeRecord(&kConn, 0xbbb0, 0, 0),
                 kNow};
  again.record.acquired_ns = kNow - 60 * kSec;
  again.record.active_ns = kNow - 750 * kMs;
  events.notes = {released, again};
  // An overdue handle in the same scan comes before the notes (a note may be
  // about a handle warned in this very scan).
  events.overdue = {Judged(MakeRecord(&kResult, 0xccc0, 2 * kSec, 0))};
  std::string out = reporter_->FormatScan(events);
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_NE(lines[0].find(Hex(0xccc0) + " held 2 s"), std::string::npos) << out;
  EXPECT_EQ(lines[2], Prefix() + "tr.result " + Hex(0xaaa0) +
                          " reported above was released after 2.3 s");
  EXPECT_EQ(lines[3], Prefix() + "tr.conn " + Hex(0xbbb0) +
                          " reported above is in use again after 750 ms idle");
}

// Tracker::Scan marks a handle reported (ForEach) before it takes the notes
// (TakeNotes), so a handle released in between arrives in one ScanEvents both
// as overdue and with a release note. "reported above" must then come after
// the warning it refers to.
TEST_F(TextReportTest, NoteAboutAHandleWarnedInTheSameScanFollowsTheWarning) {
  ScanEvents events;
  events.now_ns = kNow;
  Record r = MakeRecord(&kResult, 0xabc0, 2 * kSec, PutStack(1, 7));
  events.overdue = {Judged(r)};
  events.notes = {LiveNote{LiveNote::kReleased, r, kNow}};
  std::string out = reporter_->FormatScan(events);
  size_t warning = out.find(Hex(0xabc0) + " held 2 s");
  size_t note = out.find(Hex(0xabc0) + " reported above was released");
  ASSERT_NE(warning, std::string::npos) << out;
  ASSERT_NE(note, std::string::npos) << out;
  EXPECT_LT(warning, note) << "the note refers to a warning printed below it:\n"
                           << out;
}

TEST_F(TextReportTest, DroppedNotesAreCounted) {
  ScanEvents events;
  events.now_ns = kNow;
  events.notes_dropped = 3;
  std::string out = reporter_->FormatScan(events);
  EXPECT_EQ(out, Prefix() + "3 release notes were dropped (queue full)\n");
}

TEST_F(TextReportTest, EmptyScanSaysNothing) {
  ScanEvents events;
  events.now_ns = kNow;
  EXPECT_EQ(reporter_->FormatScan(events), "");
}

TEST_F(TextReportTest, IdentityWithDetailLabel) {
  Record r = MakeRecord(&kConn, 0xd000, 10 * kSec, 0);
  r.active_ns = kNow - 5 * kSec;
  r.identity = {Tracker::Get().InternString("dbname=app user=app"), 42};
  std::string out = reporter_->FormatScan(Overdue({r}));
  EXPECT_NE(out.find("by thread 77, dbname=app user=app backend_pid=42\n"),
            std::string::npos)
      << out;

  // The detail alone, without a description.
  r.key = 0xd100;
  r.identity = {0, 4242};
  out = reporter_->FormatScan(Overdue({r}));
  EXPECT_NE(out.find("by thread 77, backend_pid=4242\n"), std::string::npos)
      << out;

  // A kind without a detail label leaves the number out.
  Record s = MakeRecord(&kStmt, 0xd200, 2 * kSec, 0);
  s.identity = {Tracker::Get().InternString("dbname=app"), 42};
  out = reporter_->FormatScan(Overdue({s}));
  EXPECT_NE(out.find("by thread 77, dbname=app\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("=42"), std::string::npos) << out;
}

TEST_F(TextReportTest, IdentityOfAResultFromAConnection) {
  Record r = MakeRecord(&kResult, 0xe000, 2 * kSec, 0);
  r.parent = 0x5577aa00;
  r.identity = {Tracker::Get().InternString("dbname=app user=app"), 42};
  std::string out = reporter_->FormatScan(Overdue({r}));
  EXPECT_NE(out.find("by thread 77, from connection 0x5577aa00 (dbname=app "
                     "user=app backend_pid=42)\n"),
            std::string::npos)
      << out;

  r.key = 0xe100;
  r.identity = {};
  out = reporter_->FormatScan(Overdue({r}));
  EXPECT_NE(out.find("by thread 77, from connection 0x5577aa00\n"),
            std::string::npos)
      << out;
}

// --- FormatExit --------------------------------------------------------------

TEST_F(TextReportTest, ExitWithNothingHeldSaysNothing) {
  ExitSnapshot snapshot;
  snapshot.now_ns = kNow;
  snapshot.kinds[kResult.index] = &kResult;
  snapshot.totals.acquired[kResult.index] = 5;
  snapshot.totals.released[kResult.index] = 5;
  EXPECT_EQ(reporter_->FormatExit(snapshot), "");
}

TEST_F(TextReportTest, ExitGroupsByKindAndStackLargestFirst) {
  uint32_t s1 = PutStack(3, 11);
  uint32_t s2 = PutStack(2, 12);
  ExitSnapshot snapshot;
  snapshot.now_ns = kNow;
  // 2 results from s2 (older), 3 results from s1, 1 conn from s1, 2 stmts
  // from s2 (newer than the results from s2).
  ScrubbedVector<Record> held = {
      MakeRecord(&kResult, 0x1010, 3 * kSec, s1),
      MakeRecord(&kResult, 0x2010, 50 * kSec, s2),
      MakeRecord(&kConn, 0x3010, 9 * kSec, s1),
      MakeRecord(&kResult, 0x1020, 7 * kSec, s1),  // oldest of its group
      MakeRecord(&kStmt, 0x4010, 1 * kSec, s2),
      MakeRecord(&kResult, 0x2020, 40 * kSec, s2),
      MakeRecord(&kResult, 0x1030, 10 * kMs, s1),  // under the threshold
      MakeRecord(&kStmt, 0x4020, 2 * kSec, s2),
  };
  held[2].active_ns = kNow - 1 * kSec;  // the conn: idle 1 s
  snapshot.held = Judged(held);
  std::string out = reporter_->FormatExit(snapshot);

  EXPECT_NE(out.find(Prefix() + "exit report for " +
                     std::string(program_invocation_name) +
                     ": 8 handles still held at exit, in 4 groups by "
                     "acquisition stack\n"),
            std::string::npos)
      << out;
  std::string g1 = Prefix() + "3 tr.result still held at exit from site " +
                   std::to_string(s1) + " (oldest held 7 s; 2 past the " +
                   ThresholdText(Family::kResult) +
                   " threshold), acquired at:\n";
  std::string g2 = Prefix() + "2 tr.result still held at exit from site " +
                   std::to_string(s2) + " (oldest held 50 s; 2 past the " +
                   ThresholdText(Family::kResult) +
                   " threshold), acquired at:\n";
  std::string g3 = Prefix() + "2 tr.stmt still held at exit from site " +
                   std::to_string(s2) + " (oldest held 2 s; 2 past the " +
                   ThresholdText(Family::kStmt) + " threshold), acquired at:\n";
  std::string g4 = Prefix() + "1 tr.conn still held at exit from site " +
                   std::to_string(s1) + " (oldest held 9 s; 1 past the " +
                   ThresholdText(Family::kConn) +
                   " idle threshold), acquired at:\n";
  size_t p1 = out.find(g1), p2 = out.find(g2), p3 = out.find(g3),
         p4 = out.find(g4);
  ASSERT_NE(p1, std::string::npos) << out;
  ASSERT_NE(p2, std::string::npos) << out;
  ASSERT_NE(p3, std::string::npos) << out;
  ASSERT_NE(p4, std::string::npos) << out;
  EXPECT_LT(p1, p2) << "largest group first";
  EXPECT_LT(p2, p3) << "equal groups: the one with the oldest handle first";
  EXPECT_LT(p3, p4);

  // Each group: its stack, then its oldest handle as the example.
  size_t stack1 =
      out.find("    #0 " + Hex(Tracker::Get().stacks().Get(s1).data[0]), p1);
  EXPECT_LT(stack1, p2) << out;
  size_t example1 = out.find(
      "    example: tr.result " + Hex(0x1020) + " held 7 s by thread 77\n", p1);
  EXPECT_LT(example1, p2) << out;
  EXPECT_NE(out.find("    example: tr.result " + Hex(0x2010) + " held 50 s"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("    example: tr.conn " + Hex(0x3010) +
                     " idle 1 s, held 9 s by thread 77\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(Count(out, "    example: "), 4u) << out;

  // The summary comes last, most held kind first.
  std::string summary = Prefix() +
                        "SUMMARY: 8 handles still held at exit: 5 tr.result, 2 "
                        "tr.stmt, 1 tr.conn\n";
  size_t ps = out.find(summary);
  ASSERT_NE(ps, std::string::npos) << out;
  EXPECT_EQ(ps + summary.size(), out.size()) << out;
}

TEST_F(TextReportTest, ExitWithOneHandle) {
  ExitSnapshot snapshot;
  snapshot.now_ns = kNow;
  Record r = MakeRecord(&kResult, 0x1000, 2 * kSec, PutStack(1, 13));
  r.parent = 0x7700;
  r.identity = {Tracker::Get().InternString("dbname=one"), 9};
  snapshot.held = {Judged(r)};
  std::string out = reporter_->FormatExit(snapshot);
  EXPECT_NE(out.find(": 1 handle still held at exit, in 1 group by "
                     "acquisition stack\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("SUMMARY: 1 handle still held at exit: 1 tr.result\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("    example: tr.result " + Hex(0x1000) +
                     " held 2 s by thread 77, from connection 0x7700 "
                     "(dbname=one backend_pid=9)\n"),
            std::string::npos)
      << out;
}

// A frame with inlined calls: one line per function, all with the frame's
// number and pc, the inlined one marked; in JSON, consecutive objects.
TEST_F(TextReportTest, ExitShowsInlinedFramesUnderOneNumber) {
  if (std::string(Symbolizer().backend()) != "libdwfl") {
    GTEST_SKIP() << "inlined frames need libdw";
  }
  uintptr_t stack_frames[] = {CallsInlined(), Pc(FrameOne, 1), 0x100077};
  uint32_t stack = Tracker::Get().stacks().Put(stack_frames, 3);
  ExitSnapshot snapshot;
  snapshot.now_ns = kNow;
  snapshot.held = {Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, stack))};
  std::vector<std::string> lines = Lines(reporter_->FormatExit(snapshot));
  std::vector<std::string> frames;
  for (const std::string& line : lines) {
    if (StartsWith(line, "    #")) frames.push_back(line);
  }
  ASSERT_EQ(frames.size(), 4u);
  // (In this file's namespaces; the inlined function has no linkage name,
  // so the symbolizer qualifies it from the DWARF scopes.)
  const std::string ns = "leakwatch::(anonymous namespace)::";
  std::string pc0 = "    #0 " + Hex(stack_frames[0]) + " in ";
  EXPECT_TRUE(StartsWith(frames[0], pc0 + ns + "CallInInlined ")) << frames[0];
  EXPECT_NE(frames[0].find("text_report_test.cc:"), std::string::npos);
  EXPECT_TRUE(frames[0].size() > 11 &&
              frames[0].compare(frames[0].size() - 11, 11, ") [inlined]") == 0)
      << frames[0];
  EXPECT_TRUE(StartsWith(frames[1], pc0 + ns + "CallsInlined()")) << frames[1];
  EXPECT_EQ(frames[1].find("[inlined]"), std::string::npos) << frames[1];
  EXPECT_TRUE(StartsWith(frames[2], "    #1 " + Hex(stack_frames[1]) +
                                        " in " + ns + "FrameOne(int)"))
      << frames[2];
  EXPECT_TRUE(StartsWith(frames[3], "    #2 ")) << frames[3];

  Reporter json_reporter(Tracker::Get(), log_, kFormatJson);
  std::string json = json_reporter.FormatExit(snapshot);
  size_t first = json.find("\"function\":\"" + ns + "CallInInlined\"");
  size_t second = json.find("\"function\":\"" + ns + "CallsInlined()\"");
  ASSERT_NE(first, std::string::npos) << json;
  ASSERT_NE(second, std::string::npos) << json;
  EXPECT_LT(first, second);
  EXPECT_NE(json.find("\"inlined\":true}", first), std::string::npos);
  EXPECT_EQ(Count(json, "\"inlined\":true"), 1u) << json;
  EXPECT_EQ(Count(json, "\"pc\":\"" + Hex(stack_frames[0]) + "\""), 2u)
      << json;
}

TEST_F(TextReportTest, ExitPassesOnPendingNotesAndSkippedShards) {
  ExitSnapshot snapshot;
  snapshot.now_ns = kNow;
  LiveNote note{LiveNote::kReleased, MakeRecord(&kResult, 0xf000, 0, 0), kNow};
  note.record.acquired_ns = kNow - 4 * kSec;
  snapshot.notes = {note};
  snapshot.shards_skipped = 2;
  std::string out = reporter_->FormatExit(snapshot);
  EXPECT_NE(out.find(Prefix() + "tr.result " + Hex(0xf000) +
                     " reported above was released after 4 s\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("exit report incomplete: 2 of " +
                     std::to_string(ShardedTable::kShards) +
                     " table shards were locked"),
            std::string::npos)
      << out;
  EXPECT_EQ(Count(out, "SUMMARY"), 0u) << out;
}

// --- Writing through the Log
// ---------------------------------------------------

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/leakwatch_" + name +
         "_" + std::to_string(getpid()) + ".log";
}

TEST(TextReportLogTest, OnScanWritesWhatFormatScanSays) {
  std::string path = TempPath("onscan");
  unlink(path.c_str());
  {
    Log log(path);
    Reporter reporter(Tracker::Get(), log);
    ScanEvents empty;
    empty.now_ns = kNow;
    reporter.OnScan(empty);
    EXPECT_EQ(ReadFile(path), "");  // nothing to say, nothing written

    ScanEvents events;
    events.now_ns = kNow;
    events.overdue = {
        Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, PutStack(2, 14)))};
    reporter.OnScan(events);
    std::string first = ReadFile(path);
    EXPECT_TRUE(StartsWith(first, Prefix() + "tr.result " + Hex(0x1000)))
        << first;
    EXPECT_EQ(Count(first, "acquired at (site"), 1u) << first;

    events.overdue[0].record.key = 0x2000;
    reporter.OnScan(events);  // appended, and the site is known now
    std::string both = ReadFile(path);
    EXPECT_TRUE(StartsWith(both, first));
    EXPECT_EQ(Count(both, "stack shown above"), 1u) << both;
  }
  unlink(path.c_str());
}

// --- Samples and the JSON log
// -------------------------------------------------

// True if `line` is one JSON object and nothing else (RFC 8259: objects,
// arrays, strings with their escapes, numbers, true, false, null).
class JsonCursor {
 public:
  explicit JsonCursor(const std::string& s) : s_(s) {}
  bool WholeObject() {
    Space();
    return Peek() == '{' && Value() && i_ == s_.size();
  }

 private:
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void Space() {
    while (Peek() == ' ' || Peek() == '\t' || Peek() == '\r' ||
           Peek() == '\n') {
      ++i_;
    }
  }
  bool Word(const std::string& w) {
    if (s_.compare(i_, w.size(), w) != 0) return false;
    i_ += w.size();
    return true;
  }
  bool Digits() {
    size_t from = i_;
    while (std::isdigit(static_cast<unsigned char>(Peek()))) ++i_;
    return i_ > from;
  }
  bool Number() {
    if (Peek() == '-') ++i_;
    if (Peek() == '0') {
      ++i_;
    } else if (!Digits()) {
      return false;
    }
    if (Peek() == '.') {
      ++i_;
      if (!Digits()) return false;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++i_;
      if (Peek() == '+' || Peek() == '-') ++i_;
      if (!Digits()) return false;
    }
    return true;
  }
  bool String() {
    if (Peek() != '"') return false;
    ++i_;
    while (i_ < s_.size()) {
      unsigned char c = s_[i_++];
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      char e = Peek();
      ++i_;
      if (e == 'u') {
        for (int k = 0; k < 4; ++k, ++i_) {
          if (!std::isxdigit(static_cast<unsigned char>(Peek()))) return false;
        }
      } else if (e == '\0' ||
                 std::string("\"\\/bfnrt").find(e) == std::string::npos) {
        return false;
      }
    }
    return false;
  }
  // `{` or `[` then members up to `close`; `keyed`: "key": before each.
  bool Members(char close, bool keyed) {
    ++i_;
    Space();
    if (Peek() == close) {
      ++i_;
      return true;
    }
    for (;;) {
      Space();
      if (keyed) {
        if (!String()) return false;
        Space();
        if (Peek() != ':') return false;
        ++i_;
      }
      if (!Value()) return false;
      if (Peek() == ',') {
        ++i_;
        continue;
      }
      if (Peek() != close) return false;
      ++i_;
      return true;
    }
  }
  bool Value() {
    Space();
    bool ok;
    switch (Peek()) {
      case '{':
        ok = Members('}', true);
        break;
      case '[':
        ok = Members(']', false);
        break;
      case '"':
        ok = String();
        break;
      case 't':
        ok = Word("true");
        break;
      case 'f':
        ok = Word("false");
        break;
      case 'n':
        ok = Word("null");
        break;
      default:
        ok = Number();
    }
    Space();
    return ok;
  }

  const std::string& s_;
  size_t i_ = 0;
};

bool IsJsonObject(const std::string& line) {
  return JsonCursor(line).WholeObject();
}

TEST(JsonCursorTest, TellsJsonFromAlmostJson) {
  EXPECT_TRUE(
      IsJsonObject(R"({"a":[1,-2.5e3,"x\"\u00e9",true,null,{}],"b":{}})"));
  for (const char* bad :
       {"", "[]", "{", R"({"a":1,})", R"({"a":01})", R"({"a":"\q"})",
        R"({a:1})", R"({"a":1} x)", R"({"a":tru})", R"({"a":"x)"}) {
    EXPECT_FALSE(IsJsonObject(bad)) << bad;
  }
}

// The "type" of each line of an NDJSON text ("" for a line that is not an
// event object).
std::vector<std::string> Types(const std::string& text) {
  std::vector<std::string> types;
  static const std::regex kType(R"re(^\{"type":"([a-z_]+)")re");
  for (const std::string& line : Lines(text)) {
    std::smatch m;
    types.push_back(std::regex_search(line, m, kType) ? m[1].str() : "");
  }
  return types;
}

std::vector<std::string> LinesOfType(const std::string& text,
                                     const std::string& type) {
  std::vector<std::string> out;
  for (const std::string& line : Lines(text)) {
    if (StartsWith(line, "{\"type\":\"" + type + "\"")) out.push_back(line);
  }
  return out;
}

OpenSample Counts(
    std::initializer_list<std::pair<const KindDesc*, uint64_t>> open,
    std::initializer_list<std::pair<uint64_t, uint64_t>> sites = {}) {
  OpenSample s;
  for (const auto& [kind, n] : open) {
    s.kinds[kind->index] = kind;
    s.open[kind->index] = n;
  }
  for (const auto& [key, n] : sites) {
    s.site_key[s.num_sites] = key;
    s.site_open[s.num_sites++] = n;
  }
  return s;
}

ScanEvents SampleScan(int64_t now_ns, const OpenSample& sample) {
  ScanEvents events;
  events.now_ns = now_ns;
  events.sample = &sample;
  return events;
}

std::vector<uint64_t> SitesOf(const Reporter& reporter) {
  uint64_t keys[OpenSample::kMaxSites];
  int n = reporter.SampleSites(keys);
  return std::vector<uint64_t>(keys, keys + n);
}

uint64_t Site(const KindDesc* kind, uint32_t stack_id) {
  Record r;
  r.kind = kind;
  r.stack_id = stack_id;
  return SiteKey(r);
}

// The interval between samples for this binary's options.
int64_t SampleIntervalNs() {
  return std::max<int64_t>(Reporter::kSampleIntervalMs,
                           Tracker::Get().options().ScanPeriodMs()) *
         kMs;
}

class SampleTest : public testing::Test {
 protected:
  SampleTest()
      : path_(TempPath("sample_" + std::to_string(++serial_))),
        log_(path_),
        reporter_(Tracker::Get(), log_, kFormatJson) {
    unlink(path_.c_str());  // the log opens it at its first write
  }
  ~SampleTest() override { unlink(path_.c_str()); }

  std::string Written() { return ReadFile(path_); }

  static inline int serial_ = 0;
  std::string path_;
  Log log_;
  Reporter reporter_;
};

TEST_F(SampleTest, FirstSampleCountsEveryKindSeenAndCarriesTheRun) {
  EXPECT_TRUE(reporter_.WantsSamples());
  const int64_t before = WallClockMs();
  OpenSample counts = Counts({{&kResult, 2}, {&kConn, 0}});
  reporter_.OnScan(SampleScan(kNow, counts));
  const int64_t after = WallClockMs();
  std::vector<std::string> lines = Lines(Written());
  ASSERT_EQ(lines.size(), 1u) << Written();
  const std::string& line = lines[0];
  EXPECT_TRUE(IsJsonObject(line)) << line;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      line, m,
      std::regex(R"re(^\{"type":"sample","pid":(\d+),"time_ms":(\d+),)re")))
      << line;
  EXPECT_EQ(m[1].str(), std::to_string(getpid()));
  // The wall clock of every event's time_ms.
  EXPECT_GE(std::stoll(m[2].str()), before);
  EXPECT_LE(std::stoll(m[2].str()), after);
  // Kinds seen, by index, a zero too; no site warned about yet.
  EXPECT_NE(line.find(R"("open":{"tr.result":2,"tr.conn":0},"sites":[],)"),
            std::string::npos)
      << line;
  // What an exit report says of the run.
  EXPECT_NE(line.find(",\"program\":" + JsonString(ProgramName()) +
                      ",\"start_time_ms\":"),
            std::string::npos)
      << line;
  const Options& options = Tracker::Get().options();
  EXPECT_NE(line.find(",\"options\":{\"LEAKWATCH_THRESHOLD_MS\":\"" +
                      std::to_string(options.threshold_ms) + "\""),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("\"LEAKWATCH_JSON_LOG\":\"\""), std::string::npos)
      << line;
  EXPECT_TRUE(StartsWith(line.substr(line.size() - 2), "}}")) << line;
}

TEST_F(SampleTest, SitesAreThoseWhoseLiveWarningsWereWritten) {
  EXPECT_TRUE(SitesOf(reporter_).empty());
  const uint32_t warned = PutStack(2, 40), growing = PutStack(2, 41),
                 noted = PutStack(2, 42);
  ScanEvents events;
  events.now_ns = kNow;
  events.overdue = {Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, warned)),
                    Judged(MakeRecord(&kResult, 0x1040, 2 * kSec, warned))};
  SiteGrowth g;
  g.oldest = MakeRecord(&kConn, 0x2000, 5 * kSec, growing);
  g.count = 2;
  g.span_ns = kSec;
  events.growing = {g};
  // A note about a handle warned about earlier (not in this process's
  // sites) names no site.
  events.notes = {LiveNote{LiveNote::kReleased,
                           MakeRecord(&kResult, 0x3000, 0, noted), kNow}};
  OpenSample first = Counts({{&kResult, 3}, {&kConn, 2}});
  events.sample = &first;
  reporter_.OnScan(events);
  EXPECT_EQ(Types(Written()),
            (std::vector<std::string>{"leak", "leak", "growing_connection_site",
                                      "released", "sample"}))
      << Written();
  // This scan had counted before the warnings were written: its sample
  // names no site.
  EXPECT_NE(LinesOfType(Written(), "sample")[0].find("\"sites\":[]"),
            std::string::npos);
  const uint64_t warned_key = Site(&kResult, warned),
                 growing_key = Site(&kConn, growing);
  EXPECT_EQ(SitesOf(reporter_),
            (std::vector<uint64_t>{warned_key, growing_key}));

  // The next scan counts them (the tracker walks the table for them).
  OpenSample next =
      Counts({{&kResult, 3}, {&kConn, 2}}, {{warned_key, 2}, {growing_key, 2}});
  reporter_.OnScan(SampleScan(kNow + SampleIntervalNs(), next));
  std::vector<std::string> samples = LinesOfType(Written(), "sample");
  ASSERT_EQ(samples.size(), 2u) << Written();
  EXPECT_TRUE(IsJsonObject(samples[1])) << samples[1];
  EXPECT_NE(
      samples[1].find(
          R"("open":{"tr.result":3,"tr.conn":2},"sites":[{"site":)" +
          std::to_string(warned) + R"(,"kind":"tr.result","open":2},{"site":)" +
          std::to_string(growing) + R"(,"kind":"tr.conn","open":2}]})"),
      std::string::npos)
      << samples[1];
  EXPECT_EQ(samples[1].find("\"options\""), std::string::npos) << samples[1];

  // A site warned about again is not added twice.
  events.overdue = {Judged(MakeRecord(&kResult, 0x1080, 2 * kSec, warned))};
  events.growing.clear();
  events.notes.clear();
  events.sample = nullptr;
  reporter_.OnScan(events);
  EXPECT_EQ(SitesOf(reporter_),
            (std::vector<uint64_t>{warned_key, growing_key}));
}

TEST_F(SampleTest, AtMostKMaxSitesFirstCome) {
  std::vector<uint64_t> expected;
  for (int i = 0; i < OpenSample::kMaxSites + 8; ++i) {
    const uint32_t stack = PutStack(1, 1000 + i);
    ScanEvents events;
    events.now_ns = kNow;
    events.overdue = {
        Judged(MakeRecord(&kResult, 0x10000 + 0x40 * i, 2 * kSec, stack))};
    reporter_.OnScan(events);
    if (i < OpenSample::kMaxSites) expected.push_back(Site(&kResult, stack));
  }
  EXPECT_EQ(SitesOf(reporter_), expected);
}

TEST_F(SampleTest, AtMostOnePerIntervalAndOnlyWhenSomethingChanged) {
  const int64_t interval = SampleIntervalNs();
  ASSERT_GE(interval, Reporter::kSampleIntervalMs * kMs);
  const int64_t t0 = kNow;
  const OpenSample none;  // nothing seen yet
  const OpenSample one = Counts({{&kResult, 1}});
  const OpenSample zero = Counts({{&kResult, 0}});
  auto samples = [&] { return LinesOfType(Written(), "sample").size(); };
  EXPECT_TRUE(reporter_.WantsSampleAt(t0));  // the first scan's
  reporter_.OnScan(SampleScan(t0, none));    // written, however empty
  ASSERT_EQ(samples(), 1u);
  EXPECT_NE(Written().find(R"("open":{},"sites":[],)"), std::string::npos)
      << Written();
  // The tracker counts no sample for the scans of the next interval.
  EXPECT_FALSE(reporter_.WantsSampleAt(t0 + interval / 2));
  EXPECT_TRUE(reporter_.WantsSampleAt(t0 + interval));
  reporter_.OnScan(SampleScan(t0 + interval / 2, one));  // too soon
  EXPECT_EQ(samples(), 1u);
  reporter_.OnScan(SampleScan(t0 + interval, none));  // nothing changed
  EXPECT_EQ(samples(), 1u);
  EXPECT_FALSE(reporter_.WantsSampleAt(t0 + interval + interval / 2));
  reporter_.OnScan(SampleScan(t0 + interval + interval / 2, one));
  EXPECT_EQ(samples(), 1u);  // looked at an interval after the last look
  reporter_.OnScan(SampleScan(t0 + 2 * interval, one));
  EXPECT_EQ(samples(), 2u);
  reporter_.OnScan(SampleScan(t0 + 3 * interval, zero));  // down to 0
  EXPECT_EQ(samples(), 3u);
  reporter_.OnScan(SampleScan(t0 + 5 * interval, zero));
  EXPECT_EQ(samples(), 3u);
  // A site's count alone is a change.
  const uint64_t key = Site(&kResult, PutStack(1, 50));
  reporter_.OnScan(
      SampleScan(t0 + 6 * interval, Counts({{&kResult, 0}}, {{key, 0}})));
  EXPECT_EQ(samples(), 4u);
  reporter_.OnScan(
      SampleScan(t0 + 7 * interval, Counts({{&kResult, 0}}, {{key, 1}})));
  EXPECT_EQ(samples(), 5u);
  reporter_.OnScan(
      SampleScan(t0 + 8 * interval, Counts({{&kResult, 0}}, {{key, 1}})));
  EXPECT_EQ(samples(), 5u);
  std::vector<std::string> lines = Lines(Written());
  EXPECT_EQ(lines.size(), 5u) << Written();
  for (const std::string& line : lines) EXPECT_TRUE(IsJsonObject(line)) << line;
  // Only the first carries the run.
  EXPECT_EQ(Count(Written(), "\"options\":"), 1u) << Written();
}

TEST_F(SampleTest, TextFormatWritesNoSamples) {
  std::string path = TempPath("sample_text");
  unlink(path.c_str());
  {
    Log log(path);
    Reporter text(Tracker::Get(), log, kFormatText);
    EXPECT_FALSE(text.WantsSamples());
    EXPECT_FALSE(text.WantsSampleAt(kNow));
    OpenSample counts = Counts({{&kResult, 1}});
    text.OnScan(SampleScan(kNow, counts));
    ExitSnapshot snapshot;
    snapshot.now_ns = kNow;
    snapshot.sampled = true;
    snapshot.sample = counts;
    text.OnExit(snapshot);
    EXPECT_EQ(ReadFile(path), "");
  }
  unlink(path.c_str());
}

TEST_F(SampleTest, ExitWritesAFinalSampleJustBeforeTheReport) {
  const uint32_t stack = PutStack(2, 43);
  OpenSample counts = Counts({{&kResult, 1}}, {{Site(&kResult, stack), 1}});
  reporter_.OnScan(SampleScan(kNow, counts));
  ExitSnapshot snapshot;
  snapshot.now_ns = kNow + 100 * kMs;  // too soon for a scan's sample
  snapshot.held = {Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, stack))};
  snapshot.kinds[kResult.index] = &kResult;
  snapshot.sampled = true;
  snapshot.sample = counts;  // unchanged: written all the same
  reporter_.OnExit(snapshot);
  EXPECT_EQ(Types(Written()),
            (std::vector<std::string>{"sample", "sample", "exit_report"}))
      << Written();
  std::string final_sample = LinesOfType(Written(), "sample")[1];
  EXPECT_EQ(final_sample.find("\"options\""), std::string::npos);
  EXPECT_NE(final_sample.find(R"("sites":[{"site":)" + std::to_string(stack) +
                              R"(,"kind":"tr.result","open":1}])"),
            std::string::npos)
      << final_sample;
  EXPECT_EQ(reporter_.unsuppressed_at_exit(), 1u);
}

TEST_F(SampleTest, ExitSampleOnlyWithSamplesOrAReport) {
  // A short clean run: no sample was written and nothing is held, so
  // nothing at all is written, as without samples.
  ExitSnapshot clean;
  clean.now_ns = kNow;
  clean.sampled = true;
  clean.sample = Counts({{&kResult, 0}});
  reporter_.OnExit(clean);
  EXPECT_EQ(Written(), "");

  // A short run that leaked: the exit report, and before it the process's
  // first sample, with the run's fields.
  std::string path = TempPath("sample_exit_only");
  unlink(path.c_str());
  {
    Log log(path);
    Reporter reporter(Tracker::Get(), log, kFormatJson);
    ExitSnapshot leaked;
    leaked.now_ns = kNow;
    leaked.held = {Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, 0))};
    leaked.kinds[kResult.index] = &kResult;
    leaked.sampled = true;
    leaked.sample = Counts({{&kResult, 1}});
    reporter.OnExit(leaked);
    std::string text = ReadFile(path);
    EXPECT_EQ(Types(text), (std::vector<std::string>{"sample", "exit_report"}))
        << text;
    EXPECT_NE(text.find(R"("open":{"tr.result":1},"sites":[],"program":)"),
              std::string::npos)
        << text;
  }
  unlink(path.c_str());
}

TEST_F(SampleTest, ForkedChildStartsItsSamplesAndSitesAfresh) {
  ScanEvents events;
  events.now_ns = kNow;
  events.overdue = {
      Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, PutStack(2, 44)))};
  OpenSample counts = Counts({{&kResult, 1}});
  events.sample = &counts;
  reporter_.OnScan(events);
  ASSERT_EQ(SitesOf(reporter_).size(), 1u);
  // What fork's handlers do around fork(), here without one.
  reporter_.PrepareFork();
  reporter_.ChildAfterFork();
  EXPECT_TRUE(SitesOf(reporter_).empty());
  EXPECT_TRUE(reporter_.WantsSampleAt(kNow + kMs));
  reporter_.OnScan(SampleScan(kNow + kMs, counts));  // unchanged, soon after
  std::vector<std::string> samples = LinesOfType(Written(), "sample");
  ASSERT_EQ(samples.size(), 2u) << Written();
  EXPECT_NE(samples[1].find("\"options\":{"), std::string::npos) << samples[1];
}

// A misuse for the JSON log tests.
Misuse DoubleRelease(uint32_t stack) {
  Misuse m;
  m.type = Misuse::kDoubleRelease;
  m.function = "tr_clear";
  m.first.key = 0x7000;
  m.first.kind = &kResult;
  m.first.acquire_stack_id = stack;
  m.first.release_stack_id = stack;
  m.first.released_by = 78;
  m.first.acquired_ns = kNow - 3 * kSec;
  m.first.released_ns = kNow - kSec;
  m.stack_id = stack;
  m.tid = 78;
  m.now_ns = kNow;
  return m;
}

TEST(JsonLogTest, EveryEventInJsonBesidesTheTextLog) {
  const std::string text_path = TempPath("jsonlog_text"),
                    json_path = TempPath("jsonlog_json");
  unlink(text_path.c_str());
  unlink(json_path.c_str());
  {
    Log log(text_path);
    Reporter reporter(Tracker::Get(), log, kFormatText, json_path);
    EXPECT_TRUE(reporter.WantsSamples());
    const uint32_t stack = PutStack(3, 45);
    ScanEvents events;
    events.now_ns = kNow;
    events.overdue = {Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, stack)),
                      Judged(MakeRecord(&kResult, 0x1040, 2 * kSec, stack))};
    OpenSample first = Counts({{&kResult, 2}});
    events.sample = &first;
    reporter.OnScan(events);
    events.now_ns = kNow + SampleIntervalNs();
    events.overdue = {Judged(MakeRecord(&kResult, 0x1080, 2 * kSec, stack))};
    OpenSample second = Counts({{&kResult, 3}}, {{Site(&kResult, stack), 3}});
    events.sample = &second;
    reporter.OnScan(events);
    reporter.OnNotice("deepbind", "a module with its own libpq");
    ExitSnapshot held;
    held.now_ns = kNow + 2 * SampleIntervalNs();
    held.held = {Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, stack))};
    held.kinds[kResult.index] = &kResult;
    reporter.OnPeriodic(held);
    reporter.OnDemand(held);
    reporter.OnMisuse(DoubleRelease(stack));
    ExitSnapshot at_exit = held;
    at_exit.held = {Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, stack)),
                    Judged(MakeRecord(&kResult, 0x1040, 2 * kSec, stack)),
                    Judged(MakeRecord(&kResult, 0x1080, 2 * kSec, stack))};
    at_exit.sampled = true;
    at_exit.sample = second;
    reporter.OnExit(at_exit);
    reporter.OnExitAbandoned(12345);
    // The exit code's count, once.
    EXPECT_EQ(reporter.unsuppressed_at_exit(), 3u);
  }
  const std::string text = ReadFile(text_path), json = ReadFile(json_path);
  unlink(text_path.c_str());
  unlink(json_path.c_str());

  // The log stays text: every line the agent's prefix or a stack's, and the
  // site's stack shown once for both scans (one decision for both logs).
  for (const std::string& line : Lines(text)) {
    EXPECT_FALSE(StartsWith(line, "{")) << line;
  }
  EXPECT_EQ(Count(text, Prefix() + "tr.result " + Hex(0x1000) + " held"), 1u)
      << text;
  EXPECT_EQ(Count(text, "(stack shown above)"), 2u) << text;
  EXPECT_NE(text.find(Prefix() + "a module with its own libpq\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("exit report abandoned"), std::string::npos) << text;

  // The JSON log: valid NDJSON, every event, samples among them.
  for (const std::string& line : Lines(json)) {
    EXPECT_TRUE(IsJsonObject(line)) << line;
  }
  EXPECT_EQ(Types(json), (std::vector<std::string>{
                             "leak", "leak", "sample", "leak", "sample",
                             "notice", "periodic_report", "report", "misuse",
                             "sample", "exit_report", "exit_abandoned"}))
      << json;
  EXPECT_NE(
      json.find(R"("what":"deepbind","message":"a module with its own libpq")"),
      std::string::npos)
      << json;
  EXPECT_NE(json.find(R"({"type":"exit_abandoned","pid":)" +
                      std::to_string(getpid()) + R"(,"stalled_ms":12345})"),
            std::string::npos)
      << json;
  // The run's fields in the first sample, and the main log's settings.
  std::vector<std::string> samples = LinesOfType(json, "sample");
  EXPECT_NE(samples[0].find("\"LEAKWATCH_FORMAT\":\"text\""), std::string::npos)
      << samples[0];
}

TEST(JsonLogTest, WithJsonFormatBothLogsGetTheSameLines) {
  const std::string path = TempPath("jsonlog_same_main"),
                    json_path = TempPath("jsonlog_same_json");
  unlink(path.c_str());
  unlink(json_path.c_str());
  {
    Log log(path);
    Reporter reporter(Tracker::Get(), log, kFormatJson, json_path);
    ScanEvents events;
    events.now_ns = kNow;
    events.overdue = {
        Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, PutStack(2, 46)))};
    OpenSample counts = Counts({{&kResult, 1}});
    events.sample = &counts;
    reporter.OnScan(events);
    reporter.OnNotice("deepbind", "x");
    reporter.OnExitAbandoned(7);
  }
  const std::string main_text = ReadFile(path), json = ReadFile(json_path);
  unlink(path.c_str());
  unlink(json_path.c_str());
  EXPECT_EQ(
      Types(main_text),
      (std::vector<std::string>{"leak", "sample", "notice", "exit_abandoned"}))
      << main_text;
  EXPECT_EQ(main_text, json);
}

TEST(JsonLogTest, UnopenableJsonLogIsSaidOnceAndNothingSpillsOntoStderr) {
  const std::string path = TempPath("jsonlog_unopenable");
  const std::string json_path = "/nonexistent-leakwatch-dir/%p.json";
  unlink(path.c_str());
  std::string err;
  {
    Log log(path);
    Reporter reporter(Tracker::Get(), log, kFormatText, json_path);
    ScanEvents events;
    events.now_ns = kNow;
    events.overdue = {
        Judged(MakeRecord(&kResult, 0x1000, 2 * kSec, PutStack(2, 47)))};
    testing::internal::CaptureStderr();
    reporter.OnScan(events);
    reporter.OnNotice("deepbind", "x");
    reporter.OnExitAbandoned(7);
    err = testing::internal::GetCapturedStderr();
  }
  const std::string text = ReadFile(path);
  unlink(path.c_str());
  EXPECT_EQ(err,
            "leakwatch: cannot open LEAKWATCH_JSON_LOG file "
            "\"/nonexistent-leakwatch-dir/" +
                std::to_string(getpid()) +
                ".json\": No such file or directory\n");
  EXPECT_NE(text.find(Prefix() + "tr.result " + Hex(0x1000)), std::string::npos)
      << text;
  EXPECT_NE(text.find("exit report abandoned"), std::string::npos) << text;
}

TEST(JsonLogTest, WriteIfOpenOfASecondLogNotOpenWritesNothing) {
  testing::internal::CaptureStderr();
  Log second(TempPath("never_opened"), "LEAKWATCH_JSON_LOG",
             /*or_stderr=*/false);
  second.WriteIfOpen("{\"type\":\"x\"}\n");
  Log main_log("");
  main_log.WriteIfOpen("to stderr\n");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "to stderr\n");
}

// --- LEAKWATCH_STATS=1
// --------------------------------------------------------- The options are
// fixed when the Tracker is created, so this runs in a child process (a death
// test re-executing this binary) that sets the variable before its first
// Tracker::Get().

#define CHILD_CHECK(cond)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #cond); \
      std::fflush(stderr);                                                    \
      _exit(1);                                                               \
    }                                                                         \
  } while (0)

void StatsChild() {
  setenv("LEAKWATCH_STATS", "1", 1);
  Tracker& tracker = Tracker::Get();
  CHILD_CHECK(tracker.options().stats);
  Log log("");
  Reporter reporter(tracker, log);

  ExitSnapshot none;
  none.now_ns = kNow;
  std::string out = reporter.FormatExit(none);
  CHILD_CHECK(out == Prefix() + "stats: no handles seen\n");

  ExitSnapshot s;
  s.now_ns = kNow;
  s.kinds[kResult.index] = &kResult;
  s.kinds[kConn.index] = &kConn;
  s.totals.acquired[kResult.index] = 5;
  s.totals.released[kResult.index] = 3;
  s.totals.replaced[kResult.index] = 1;
  s.totals.acquired[kConn.index] = 2;
  s.totals.released[kConn.index] = 2;
  s.dropped = 4;
  out = reporter.FormatExit(s);
  std::fprintf(stderr, "%s", out.c_str());
  CHILD_CHECK(out == Prefix() +
                         "stats: tr.result acquired 5 released 3 replaced 1, "
                         "tr.conn acquired 2 released 2 (dropped 4 for lack "
                         "of memory)\n");

  // The real path: Tracker::Exit -> OnExit -> the log file.
  std::string path = TempPath("stats");
  unlink(path.c_str());
  Log file_log(path);
  Reporter file_reporter(tracker, file_log);
  tracker.SetSink(&file_reporter);
  tracker.Acquire(&kResult, 0x1000, {});
  tracker.Acquire(&kResult, 0x2000, {});
  CHILD_CHECK(tracker.Release(0x2000));
  tracker.Exit();
  std::string written = ReadFile(path);
  unlink(path.c_str());
  std::fprintf(stderr, "%s", written.c_str());
  CHILD_CHECK(written.find("SUMMARY: 1 handle still held at exit: 1 "
                           "tr.result\n") != std::string::npos);
  CHILD_CHECK(written.find("stats: tr.result acquired 2 released 1\n") !=
              std::string::npos);
  std::fprintf(stderr, "stats-child-ok\n");
  std::fflush(stderr);
  _exit(0);
}

TEST(TextReportDeathTest, StatsAtExit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(StatsChild(), testing::ExitedWithCode(0), "stats-child-ok");
}

}  // namespace
}  // namespace leakwatch
