// Thread programs (tests/programs/thr_*.c, thr_*.cc) under the agent: leaked
// threads (exited and never joined; a growing creation site) are reported live
// and at exit with exact counts, and every clean way of running threads —
// pools, joins of every kind, detaching, cancellation, C11 and C++ threads,
// heavy concurrent creation — is silent, with the agent's totals equal to the
// program's own.
//
// The rule for a growing site (DESIGN.md "What counts as a leak", README):
// for each creation stack, take its running threads older than the threshold
// T; the site is growing when there are at least 2 of them and their creation
// times span more than T. It is warned about the first time, and again each
// time that count reaches at least twice the count of its last warning.
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

// The "    #N 0x... in ..." frame lines right after lines[at].
std::vector<std::string> FramesAfter(const std::vector<std::string>& lines,
                                     size_t at) {
  std::vector<std::string> frames;
  for (size_t i = at + 1; i < lines.size() && lines[i].rfind("    #", 0) == 0;
       ++i) {
    frames.push_back(lines[i]);
  }
  return frames;
}

bool HasFrame(const std::vector<std::string>& frames,
              const std::string& function) {
  for (const std::string& f : frames) {
    if (f.find(" in " + function) != std::string::npos) return true;
  }
  return false;
}

// One live "growing thread site" warning, in the order printed.
struct GrowingWarning {
  int site = 0;
  int count = 0;
  bool first = false;                // the full form, with stack
  std::string threshold;             // first form only: "300 ms"
  std::string start_routine;         // first form only
  std::vector<std::string> frames;   // first form only
  std::string line;
};

std::vector<GrowingWarning> GrowingWarnings(const std::string& text) {
  static const std::regex kFirst(
      R"(leakwatch\[\d+\]: growing thread site (\d+): (\d+) threads from one creation site still running \(created over [0-9.]+ m?s, oldest [0-9.]+ m?s, threshold ([^)]+)\), start routine (\S+), created at:$)");
  static const std::regex kLater(
      R"(leakwatch\[\d+\]: growing thread site (\d+): now (\d+) threads still running \(doubled since the last warning; created over [0-9.]+ m?s, oldest [0-9.]+ m?s\)$)");
  std::vector<GrowingWarning> warnings;
  std::vector<std::string> lines = Lines(text);
  std::smatch m;
  for (size_t i = 0; i < lines.size(); ++i) {
    GrowingWarning w;
    w.line = lines[i];
    if (std::regex_search(lines[i], m, kFirst)) {
      w.site = std::stoi(m[1]);
      w.count = std::stoi(m[2]);
      w.first = true;
      w.threshold = m[3];
      w.start_routine = m[4];
      w.frames = FramesAfter(lines, i);
      warnings.push_back(w);
    } else if (std::regex_search(lines[i], m, kLater)) {
      w.site = std::stoi(m[1]);
      w.count = std::stoi(m[2]);
      warnings.push_back(w);
    } else if (lines[i].find("growing thread site") != std::string::npos) {
      ADD_FAILURE() << "unrecognised growing-site line: " << lines[i];
    }
  }
  return warnings;
}

// How many threads got a live "exited ... and was never joined" warning with
// `threshold` ("300 ms"): each one's own line, plus the counts of the sites'
// "... and K more thread from site S past the threshold" lines (like
// CountLiveWarnings, for the thread wording).
int CountUnjoinedWarnings(const std::string& text,
                          const std::string& threshold) {
  // The creator ("by thread M") may be named inside the parentheses or after
  // the threshold.
  std::regex warning(
      R"(: thread 0x[0-9a-f]+ \(tid \d+, start routine [^,)\s]+[^)]*\) exited [0-9.]+ m?s ago and was never joined \(threshold )" +
      threshold + R"(\)(?: by thread \d+)?, created at)");
  static const std::regex more(
      R"(\.\.\. and (\d+) more thread from site \d+ past the threshold)");
  int count = static_cast<int>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), warning),
                    std::sregex_iterator()));
  for (std::sregex_iterator it(text.begin(), text.end(), more), end; it != end;
       ++it) {
    count += std::stoi((*it)[1]);
  }
  return count;
}

// How many reported threads got a "reported above was released" note: each
// one's own line, plus "... and K more thread from site S released" lines.
int CountReleasedNotes(const std::string& text) {
  static const std::regex note(
      R"(: thread 0x[0-9a-f]+ reported above was released after [0-9.]+ m?s)");
  static const std::regex more(
      R"(\.\.\. and (\d+) more thread from site \d+ released)");
  int count = static_cast<int>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), note),
                    std::sregex_iterator()));
  for (std::sregex_iterator it(text.begin(), text.end(), more), end; it != end;
       ++it) {
    count += std::stoi((*it)[1]);
  }
  return count;
}

// The number after `label` in the program's own stdout ("threads created: 37").
long ProgramCount(const std::string& out, const std::string& label) {
  std::smatch m;
  std::regex re(label + R"( (\d+))");
  if (!std::regex_search(out, m, re)) {
    ADD_FAILURE() << "no \"" << label << " N\" in the program's output: "
                  << out;
    return -1;
  }
  return std::stol(m[1]);
}

// Asserts that the agent printed nothing but its stats line, and that the
// thread totals are `expected` acquired and as many released.
void ExpectOnlyBalancedStats(const RunResult& r, long expected) {
  std::vector<std::string> lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("stats: "), std::string::npos) << r.err;
  KindTotals t = ParseStats(r.err, "thread");
  EXPECT_EQ(t.acquired, expected) << r.err;
  EXPECT_EQ(t.released, expected) << r.err;
  EXPECT_EQ(t.replaced, 0) << r.err;
}

const std::map<std::string, std::string> kThreshold300 = {
    {"LEAKWATCH_THRESHOLD_MS", "300ms"}};

// --- growing sites ------------------------------------------------------------

// 30 watcher threads, one per real connection (each connection closed), the
// watchers created 50 ms apart and blocked forever. The site qualifies once
// the watchers past the 300 ms threshold span more than 300 ms (about 8 of
// them); the watchdog scans every 75 ms (a quarter of the threshold), so it
// sees the site within a watcher or two of that, and the count doubles again
// while watchers are still coming (the 30th passes the threshold 1.75 s in).
TEST(ThreadPrograms, WatcherPerConnectionIsOneGrowingSiteLiveAndAtExit) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = kThreshold300;
  RunResult r = RunProgram({ProgramPath("thr_watchers"), "30", "50", "1000"},
                           options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "started 30 watchers\n");

  std::vector<GrowingWarning> warnings = GrowingWarnings(r.err);
  ASSERT_GE(warnings.size(), 2u) << r.err;
  std::set<int> sites;
  for (const GrowingWarning& w : warnings) sites.insert(w.site);
  EXPECT_EQ(sites.size(), 1u) << r.err;  // one site, not one per thread
  ASSERT_TRUE(warnings[0].first) << r.err;
  EXPECT_EQ(warnings[0].threshold, "300 ms");
  EXPECT_EQ(warnings[0].start_routine, "watch_connection");
  EXPECT_TRUE(HasFrame(warnings[0].frames, "start_watcher")) << r.err;
  EXPECT_TRUE(HasFrame(warnings[0].frames, "serve_request")) << r.err;
  EXPECT_GE(warnings[0].count, 2);
  for (size_t i = 1; i < warnings.size(); ++i) {
    EXPECT_FALSE(warnings[i].first) << warnings[i].line;
    EXPECT_GE(warnings[i].count, 2 * warnings[i - 1].count)
        << warnings[i].line << "\n" << r.err;
  }
  EXPECT_LE(warnings.back().count, 30);
  // Running threads are never "exited and not joined"; the connections were
  // all finished, so nothing else is reported.
  EXPECT_EQ(CountUnjoinedWarnings(r.err, "300 ms"), 0) << r.err;
  EXPECT_TRUE(LinesWith(r.err, "pg.").empty()) << r.err;

  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  const ExitGroup& g = report.groups[0];
  EXPECT_EQ(g.kind, "thread");
  EXPECT_EQ(g.count, 30);
  EXPECT_EQ(g.site, warnings[0].site);
  EXPECT_NE(g.header.find("growing site, still running"), std::string::npos)
      << g.header;
  EXPECT_TRUE(GroupHasFrame(g, "start_watcher")) << r.err;
  EXPECT_NE(g.example.find("start routine watch_connection"), std::string::npos)
      << g.example;
  EXPECT_EQ(report.total, 30);
  EXPECT_EQ(report.per_kind["thread"], 30);
}

// Only 5 watchers, 200 ms apart, threshold 300 ms: still a growing site.
// By the rule, two watchers (200 ms apart) are not enough; the site first
// qualifies when the third passes the threshold (3 threads spanning 400 ms),
// so the one live warning says 3; 5 never reaches 2 x 3, so there is no
// second one. At exit all 5 are reported.
TEST(ThreadPrograms, FiveSlowWatchersAreStillAGrowingSite) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = kThreshold300;
  RunResult r = RunProgram({ProgramPath("thr_watchers"), "5", "200", "1000"},
                           options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "started 5 watchers\n");
  std::vector<GrowingWarning> warnings = GrowingWarnings(r.err);
  ASSERT_EQ(warnings.size(), 1u) << r.err;
  EXPECT_TRUE(warnings[0].first);
  EXPECT_EQ(warnings[0].count, 3) << r.err;
  EXPECT_EQ(warnings[0].start_routine, "watch_connection");
  EXPECT_TRUE(HasFrame(warnings[0].frames, "start_watcher")) << r.err;

  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "thread");
  EXPECT_EQ(report.groups[0].count, 5);
  EXPECT_NE(report.groups[0].header.find("growing site, still running"),
            std::string::npos)
      << report.groups[0].header;
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "start_watcher")) << r.err;
  EXPECT_EQ(report.per_kind["thread"], 5);
}

// Batches of 4, 4 and 8 blocked threads from one site, 625 ms apart, with a
// 300 ms thread threshold (the per-family option), times from the first batch:
//   - 300..925 ms: the first 4 are past the threshold, but they were started
//     together (span ~0 <= 300 ms): a pool, no warning;
//   - from 925 ms: 8 past the threshold, spanning 625 ms: growing, warning
//     with 8;
//   - from 1550 ms: 16 past the threshold, 16 >= 2 x 8: second warning, 16.
// 16 < 2 x 16, so nothing more: exactly 2 warnings, 8 and 16, at exit 16.
// Each batch is created back to back, within a millisecond; a scan sees a
// partial batch only if it lands inside that window as the batch crosses the
// threshold. The watchdog starts at the first acquire (the first batch) and
// scans every 75 ms (a quarter of the threshold), so with a gap that is a
// multiple of 75 ms (600) the scans land right on the crossings (this test
// once saw "5 threads"); with 625 ms they fall 25 ms after the second
// batch's crossing and 25 ms before the third's.
TEST(ThreadPrograms, GrowingSiteWarnsAtEachDoublingOnly) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THREAD_THRESHOLD_MS", "300ms"}};
  RunResult r =
      RunProgram({ProgramPath("thr_growing_site"), "625", "900"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "16 threads started in 3 batches\n");
  std::vector<GrowingWarning> warnings = GrowingWarnings(r.err);
  ASSERT_EQ(warnings.size(), 2u) << r.err;
  EXPECT_TRUE(warnings[0].first);
  EXPECT_EQ(warnings[0].count, 8) << r.err;
  EXPECT_EQ(warnings[0].threshold, "300 ms");
  EXPECT_EQ(warnings[0].start_routine, "wait_for_work");
  EXPECT_TRUE(HasFrame(warnings[0].frames, "start_stuck_thread")) << r.err;
  EXPECT_TRUE(HasFrame(warnings[0].frames, "start_batch")) << r.err;
  EXPECT_FALSE(warnings[1].first);
  EXPECT_EQ(warnings[1].count, 16) << r.err;
  EXPECT_EQ(warnings[1].site, warnings[0].site);
  EXPECT_EQ(CountUnjoinedWarnings(r.err, "300 ms"), 0) << r.err;

  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "thread");
  EXPECT_EQ(report.groups[0].count, 16);
  EXPECT_EQ(report.groups[0].site, warnings[0].site);
  EXPECT_NE(report.groups[0].header.find("growing site, still running"),
            std::string::npos)
      << report.groups[0].header;
  EXPECT_EQ(report.total, 16);
}

// --- exited, never joined -------------------------------------------------------

TEST(ThreadPrograms, FiftyUnjoinedThreadsAreReportedLiveAndAtExit) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300ms"}, {"LEAKWATCH_STATS", "1"}};
  RunResult r =
      RunProgram({ProgramPath("thr_unjoined"), "leak", "50", "1000"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "50 threads finished, 0 joined\n");
  // Live: every one of the 50, once.
  EXPECT_EQ(CountUnjoinedWarnings(r.err, "300 ms"), 50) << r.err;
  std::vector<std::string> lines = Lines(r.err);
  static const std::regex kFirstWithStack(
      R"(: thread 0x[0-9a-f]+ \(tid \d+, start routine sum_numbers(?:, created by thread \d+)?\) exited [0-9.]+ m?s ago and was never joined \(threshold 300 ms\)(?: by thread \d+)?, created at \(site \d+\):$)");
  size_t with_stack = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (std::regex_search(lines[i], kFirstWithStack)) {
      ++with_stack;
      EXPECT_TRUE(HasFrame(FramesAfter(lines, i), "spawn_summer")) << r.err;
    }
  }
  EXPECT_EQ(with_stack, 1u) << r.err;  // the site's stack, shown once
  EXPECT_TRUE(GrowingWarnings(r.err).empty()) << r.err;
  EXPECT_EQ(CountReleasedNotes(r.err), 0) << r.err;

  // At exit: one group of 50, all past the threshold.
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  const ExitGroup& g = report.groups[0];
  EXPECT_EQ(g.kind, "thread");
  EXPECT_EQ(g.count, 50);
  EXPECT_EQ(g.past_threshold, 50) << g.header;
  EXPECT_NE(g.header.find("exited, never joined"), std::string::npos)
      << g.header;
  EXPECT_TRUE(GroupHasFrame(g, "spawn_summer")) << r.err;
  EXPECT_TRUE(GroupHasFrame(g, "main")) << r.err;
  EXPECT_NE(g.example.find("start routine sum_numbers"), std::string::npos)
      << g.example;
  EXPECT_NE(g.example.find("exited"), std::string::npos) << g.example;
  EXPECT_EQ(report.total, 50);
  EXPECT_EQ(report.per_kind["thread"], 50);
  KindTotals t = ParseStats(r.err, "thread");
  EXPECT_EQ(t.acquired, 50) << r.err;
  EXPECT_EQ(t.released, 0) << r.err;
}

// Joined after being reported: slow, not leaked — one release note per
// reported thread, and nothing at exit.
TEST(ThreadPrograms, UnjoinedThreadsJoinedLateGetReleaseNotesNotAnExitReport) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300ms"}, {"LEAKWATCH_STATS", "1"}};
  RunResult r =
      RunProgram({ProgramPath("thr_unjoined"), "late", "50", "1000"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "50 threads finished, 50 joined\n");
  EXPECT_EQ(CountUnjoinedWarnings(r.err, "300 ms"), 50) << r.err;
  EXPECT_EQ(CountReleasedNotes(r.err), 50) << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
  KindTotals t = ParseStats(r.err, "thread");
  EXPECT_EQ(t.acquired, 50) << r.err;
  EXPECT_EQ(t.released, 50) << r.err;
}

TEST(ThreadPrograms, FiftyJoinedThreadsAreSilent) {
  RunOptions options;
  options.env = kThreshold300;
  RunResult r =
      RunProgram({ProgramPath("thr_unjoined"), "join", "50", "1000"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "50 threads finished, 50 joined\n");
  EXPECT_EQ(r.err, "");
}

TEST(ThreadPrograms, ThreadTrackingOffReportsNothing) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300ms"},
                 {"LEAKWATCH_TRACK", "pg,mysql"}};
  RunResult r =
      RunProgram({ProgramPath("thr_unjoined"), "leak", "50", "1000"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "50 threads finished, 0 joined\n");
  EXPECT_EQ(r.err, "");
}

// --- pools ------------------------------------------------------------------------

// 8 workers started at once and busy for 3 s, ten times the threshold: a
// pool, not a leak.
TEST(ThreadPrograms, PoolStartedTogetherAndJoinedIsSilent) {
  RunOptions options;
  options.env = kThreshold300;
  RunResult r =
      RunProgram({ProgramPath("thr_pool"), "join", "8", "3000"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "pool of 8 workers joined\n");
  EXPECT_EQ(r.err, "");
}

// The same pool still running when the program calls exit(): every service
// exits with its pool running; not reported at exit either.
TEST(ThreadPrograms, PoolRunningAtExitIsSilent) {
  RunOptions options;
  options.env = kThreshold300;
  RunResult r =
      RunProgram({ProgramPath("thr_pool"), "exit", "8", "3000"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "pool of 8 workers still running at exit\n");
  EXPECT_EQ(r.err, "");
}

// --- clean endings, balanced totals -------------------------------------------

// Self-detach + return / pthread_exit, pthread_exit + join, cancel + join,
// created detached, detached by the creator (running and already exited),
// tryjoin after EBUSY, timedjoin, clockjoin, a timed-out timedjoin then join,
// C11 join / thrd_exit / self-detach / detach by creator.
TEST(ThreadPrograms, EveryCleanEndOfAThreadIsSilentAndBalanced) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300ms"}, {"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("thr_lifecycle"), "600"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  long created = ProgramCount(r.out, "threads created:");
  EXPECT_EQ(created, 37);  // the program's cases, counted in its source
  ExpectOnlyBalancedStats(r, created);
}

// std::thread (one throwing and catching inside), std::jthread, std::async
// and a detached std::thread.
TEST(ThreadPrograms, StdThreadsAreSilentAndBalanced) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300ms"}, {"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("thr_std_thread"), "600"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  long created = ProgramCount(r.out, "threads created:");
  EXPECT_EQ(created, 11);
  ExpectOnlyBalancedStats(r, created);
}

// The stress runs: scans every 50 ms (the watchdog works through the records
// while they churn) and a thread threshold longer than any run, 60 s. With 64
// busy creators on a few CPUs a creator can wait a long time for a CPU
// between its child's exit and its join — a join really later than the
// threshold, legitimately reported: seen at 300 ms under ctest -j2, and at
// 2 s (a creator stalled for 3 s) when the whole suite shared the machine.
// These runs are about records lost or duplicated, not about late joins.
const std::map<std::string, std::string> kStressEnv = {
    {"LEAKWATCH_THREAD_THRESHOLD_MS", "60s"},
    {"LEAKWATCH_SCAN_MS", "50ms"},
    {"LEAKWATCH_STATS", "1"}};

// 64 creators, started at once and joined at the end, each creating children
// for 3 s (joined, self-detached, detached by the creator): no crash, no lost
// or duplicated record, nothing reported (the creators are a pool).
TEST(ThreadPrograms, ConcurrentCreateAndJoinLosesNothing) {
  RunOptions options;
  options.env = kStressEnv;
  RunResult r = RunProgram({ProgramPath("thr_stress"), "64", "3000"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_FALSE(r.timed_out);
  long calls = ProgramCount(r.out, "pthread_create calls");
  long children = ProgramCount(r.out, "children");
  EXPECT_EQ(calls, 64 + children);
  EXPECT_GT(children, 0);
  ExpectOnlyBalancedStats(r, calls);
}

// The same, one ending at a time, so a failure says which race lost or
// duplicated records: j = joined, s = self-detached, c = detached by the
// creator right after creation.
TEST(ThreadPrograms, ConcurrentCreationLosesNothingForEachEndingAlone) {
  for (const char* cycle : {"j", "s", "c"}) {
    SCOPED_TRACE(std::string("cycle ") + cycle);
    RunOptions options;
    options.env = kStressEnv;
    RunResult r =
        RunProgram({ProgramPath("thr_stress"), "64", "1500", cycle}, options);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    long calls = ProgramCount(r.out, "pthread_create calls");
    ExpectOnlyBalancedStats(r, calls);
  }
}

// Totals alone cannot see a record that was lost to another thread's: a
// detached child that exits before its creator's hook has recorded it gives
// its pthread_t back to glibc, and another creator's new thread may get that
// pthread_t first; the late record must not take the new thread's place.
// Here every other child of 64 creators is leaked (returns, never joined; at
// most 100 per creator, with small stacks so leaked children reuse the
// pthread_t values of self-detached ones): each leaked thread must be in the
// exit report, and all the others released.
TEST(ThreadPrograms, ConcurrentCreationLosesNoLeakedThread) {
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("thr_stress"), "64", "2000", "sl"},
                           options);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  long calls = ProgramCount(r.out, "pthread_create calls");
  long leaked = ProgramCount(r.out, "leaked");
  ASSERT_GT(leaked, 0) << r.out;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "thread");
  EXPECT_EQ(report.groups[0].count, leaked) << report.groups[0].header;
  EXPECT_NE(report.groups[0].header.find("exited, never joined"),
            std::string::npos)
      << report.groups[0].header;
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "create_children")) << r.err;
  EXPECT_EQ(report.per_kind["thread"], leaked);
  KindTotals t = ParseStats(r.err, "thread");
  EXPECT_EQ(t.acquired, calls) << r.out;
  EXPECT_EQ(t.released, calls - leaked) << r.out;
  EXPECT_EQ(t.replaced, 0);
}

}  // namespace
}  // namespace leakwatch::testing
