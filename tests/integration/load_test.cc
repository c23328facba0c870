// Load (issue 6): 64 threads opening, using and closing real PostgreSQL
// (load_pg) and MariaDB (load_my) connections, results and statements, under
// the agent with LEAKWATCH_STATS=1 and the default 30 s live threshold. The
// program must exit 0 within its deadline (no crash, no deadlock), the
// agent's per-kind totals must equal the program's own counts exactly, and
// the agent must say nothing but its stats line (no live warning, nothing
// still held at exit).
//
// Duration: 5 s per program here (LEAKWATCH_LOAD_SECONDS overrides it; the
// issue's 20 s run is `LEAKWATCH_LOAD_SECONDS=20 ctest -R Load`, and
// tests/load/run_sanitizers.sh runs the programs at their 20 s default).
// Every hook call is a chance for a race, and 5 s on this 2-CPU machine is
// already ~1,500 PostgreSQL and ~4,000 MariaDB connections and ~45,000 and
// ~90,000 results across 64 threads; 20 s would add 30 s to every CI run for
// four times the same interleavings.
//
// Each program also runs once without the agent: the peak RSS ratio (agent /
// plain) is printed, and only checked against a loose bound (RSS is noisy).
// Not a ratio: most of the overhead is per thread, not per handle — libunwind
// gives every thread that captures a stack its own fast-trace cache, 2^14
// frames x 16 bytes = 256 KiB, written in full on the thread's first
// unw_backtrace and unmapped at its exit (src/x86_64/Gtrace.c,
// HASH_MIN_BITS). 64 threads: +16 MiB over a plain run of ~11 MiB, a ratio
// near 2.7 that says more about the thread count than about the agent. So the
// bound is 320 KiB per thread + 8 MiB fixed.
//
// MemoryPerHandleIsBounded runs mem_handles (no server) with and without the
// agent: a loose sanity check of the agent's bytes per live handle and that
// a churn of acquire/release does not grow it (the measured figures come from
// tests/load/measure_memory.sh).
#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

std::string LoadSeconds() {
  const char* s = getenv("LEAKWATCH_LOAD_SECONDS");
  return s != nullptr && atof(s) > 0 ? s : "5";
}

// The number after "<label>: " in the program's stdout.
long Count(const std::string& out, const std::string& label) {
  std::smatch m;
  std::regex re("(^|\n)" + label + R"(: (\d+))");
  if (!std::regex_search(out, m, re)) {
    ADD_FAILURE() << "no \"" << label << ": N\" in the program's output: "
                  << out;
    return -1;
  }
  return std::stol(m[2]);
}

// The agent said nothing but its one stats line.
void ExpectOnlyStats(const RunResult& r) {
  std::vector<std::string> lines;
  std::istringstream in(r.err);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("stats: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("still held"), std::string::npos) << r.err;
}

void ExpectTotals(const RunResult& r, const std::string& kind, long acquired,
                  long released) {
  SCOPED_TRACE(kind);
  KindTotals t = ParseStats(r.err, kind);
  EXPECT_EQ(t.acquired, acquired) << r.err;
  EXPECT_EQ(t.released, released) << r.err;
  EXPECT_EQ(t.replaced, 0) << r.err;
}

struct LoadRuns {
  RunResult agent, plain;
};

// Runs `program` for LoadSeconds() with 64 threads under the agent, then
// without it.
LoadRuns RunLoad(const std::string& program) {
  std::string seconds = LoadSeconds();
  // The run itself, the agent's exit, and a starved ctest -j2 neighbour.
  int timeout_s = static_cast<int>(atof(seconds.c_str())) + 90;
  LoadRuns runs;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  options.timeout_s = timeout_s;
  runs.agent = RunProgram({ProgramPath(program), seconds, "64"}, options);
  RunOptions plain;
  plain.preload = false;
  plain.timeout_s = timeout_s;
  runs.plain = RunProgram({ProgramPath(program), seconds, "64"}, plain);
  return runs;
}

void ExpectRunOk(const RunResult& r) {
  EXPECT_FALSE(r.timed_out) << "deadlock or hang; output so far:\n"
                            << r.out << r.err;
  EXPECT_EQ(r.term_signal, 0) << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

void ReportRss(const LoadRuns& runs, const std::string& what) {
  long with = Count(runs.agent.out, "peak rss kib");
  long without = Count(runs.plain.out, "peak rss kib");
  ASSERT_GT(without, 0);
  double ratio = static_cast<double>(with) / static_cast<double>(without);
  std::printf("%s peak RSS: %ld KiB with the agent, %ld KiB without: %.2fx\n",
              what.c_str(), with, without, ratio);
  std::printf("%s throughput: %ld connections, %ld results with the agent; "
              "%ld, %ld without\n",
              what.c_str(), Count(runs.agent.out, "connections opened"),
              Count(runs.agent.out, "results acquired"),
              Count(runs.plain.out, "connections opened"),
              Count(runs.plain.out, "results acquired"));
  ::testing::Test::RecordProperty("peak_rss_ratio", std::to_string(ratio));
  long threads = Count(runs.agent.out, "threads");
  EXPECT_LT(with - without, threads * 320 + 8192)
      << "with " << with << " KiB, without " << without << " KiB";
}

TEST(Load, PostgresSixtyFourThreadsBalancedAndSilent) {
  if (!RequirePostgres()) return;
  LoadRuns runs = RunLoad("load_pg");
  const RunResult& r = runs.agent;
  ExpectRunOk(r);
  ExpectRunOk(runs.plain);
  if (r.exit_code != 0) return;
  std::printf("load_pg under the agent:\n%s%s", r.out.c_str(), r.err.c_str());
  long opened = Count(r.out, "connections opened");
  EXPECT_GT(opened - Count(r.out, "connect failures"), 64) << r.out;
  EXPECT_GT(Count(r.out, "results acquired"), 1000) << r.out;
  ExpectOnlyStats(r);
  ExpectTotals(r, "pg.conn", opened, Count(r.out, "connections closed"));
  ExpectTotals(r, "pg.result", Count(r.out, "results acquired"),
               Count(r.out, "results cleared"));
  ExpectTotals(r, "pg.cancel", Count(r.out, "cancels acquired"),
               Count(r.out, "cancels freed"));
  ExpectTotals(r, "thread", Count(r.out, "threads"), Count(r.out, "threads"));
  ReportRss(runs, "load_pg");
}

TEST(Load, MysqlSixtyFourThreadsBalancedAndSilent) {
  if (!RequireMysql()) return;
  LoadRuns runs = RunLoad("load_my");
  const RunResult& r = runs.agent;
  ExpectRunOk(r);
  ExpectRunOk(runs.plain);
  if (r.exit_code != 0) return;
  std::printf("load_my under the agent:\n%s%s", r.out.c_str(), r.err.c_str());
  long opened = Count(r.out, "connections opened");
  EXPECT_GT(opened - Count(r.out, "connect failures"), 64) << r.out;
  EXPECT_GT(Count(r.out, "statements opened"), 100) << r.out;
  ExpectOnlyStats(r);
  ExpectTotals(r, "mysql.conn", opened, Count(r.out, "connections closed"));
  ExpectTotals(r, "mysql.result", Count(r.out, "results acquired"),
               Count(r.out, "results freed"));
  ExpectTotals(r, "mysql.stmt", Count(r.out, "statements opened"),
               Count(r.out, "statements closed"));
  ExpectTotals(r, "thread", Count(r.out, "threads"), Count(r.out, "threads"));
  ReportRss(runs, "load_my");
}

// Loose bounds only (issue 7 has the real targets: <= 4 MiB fixed, <= 128
// bytes per handle): 100,000 live results from 100 sites cost the agent less
// than 1 KiB each, and 1,000,000 more acquired and released one at a time
// grow its memory by less than 4 MiB (the recently-released set is a ring).
TEST(Load, MemoryPerHandleIsBounded) {
  const long kHandles = 100000;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  options.timeout_s = 120;
  RunResult agent = RunProgram(
      {ProgramPath("mem_handles"), std::to_string(kHandles), "1000000"},
      options);
  RunOptions plain_options;
  plain_options.preload = false;
  RunResult plain = RunProgram(
      {ProgramPath("mem_handles"), std::to_string(kHandles), "1000000"},
      plain_options);
  ASSERT_EQ(agent.exit_code, 0) << agent.out << agent.err;
  ASSERT_EQ(plain.exit_code, 0) << plain.out << plain.err;
  ExpectOnlyStats(agent);
  ExpectTotals(agent, "pg.result", 2 * kHandles + 1000000 + 1,
               2 * kHandles + 1000000 + 1);
  auto growth = [](const RunResult& r, const char* from, const char* to) {
    return Count(r.out, std::string("rss kib ") + to) -
           Count(r.out, std::string("rss kib ") + from);
  };
  double per_handle = 1024.0 *
                      static_cast<double>(growth(agent, "warm", "held") -
                                          growth(plain, "warm", "held")) /
                      kHandles;
  long fixed_kib =
      Count(agent.out, "rss kib warm") - Count(plain.out, "rss kib warm");
  long churn_kib = growth(agent, "cleared", "churn") -
                   growth(plain, "cleared", "churn");
  std::printf("agent memory: fixed %ld KiB, %.0f bytes per live handle, "
              "churn of 1,000,000 grew it by %ld KiB\n",
              fixed_kib, per_handle, churn_kib);
  EXPECT_LT(per_handle, 1024.0) << agent.out << plain.out;
  EXPECT_LT(churn_kib, 4096) << agent.out << plain.out;
}

}  // namespace
}  // namespace leakwatch::testing
