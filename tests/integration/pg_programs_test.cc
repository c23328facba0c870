// Leaky and clean libpq programs (tests/programs) under the agent, against
// the real PostgreSQL server that scripts/test.sh starts.
#include <fstream>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

int CountMatches(const std::string& text, const std::regex& re) {
  return static_cast<int>(std::distance(
      std::sregex_iterator(text.begin(), text.end(), re),
      std::sregex_iterator()));
}

TEST(PgPrograms, ConnectionNeverFinishedIsReportedAtExit) {
  if (!RequirePostgres()) return;
  RunResult r = RunProgram({ProgramPath("pg_conn_leak"), "7"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "found 4 of 7\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "pg.conn");
  EXPECT_EQ(report.groups[0].count, 3);  // requests 1, 3 and 5
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "handle_lookup_request")) << r.err;
  EXPECT_NE(report.groups[0].example.find("dbname=leakwatch user=leakwatch "
                                           "host=127.0.0.1"),
            std::string::npos)
      << report.groups[0].example;
  EXPECT_NE(report.groups[0].example.find("backend_pid="), std::string::npos);
  EXPECT_EQ(report.total, 3);
  EXPECT_EQ(report.per_kind["pg.conn"], 3);
}

TEST(PgPrograms, ResultsNeverClearedInALoopAreCountedExactly) {
  if (!RequirePostgres()) return;
  RunResult r = RunProgram({ProgramPath("pg_result_loop_leak"), "37"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "pg.result");
  EXPECT_EQ(report.groups[0].count, 37);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "count_rows_in_batch")) << r.err;
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "main")) << r.err;
  // The result names the connection it came from, and that connection's
  // identity, although the connection itself was finished.
  EXPECT_NE(report.groups[0].example.find("from connection 0x"),
            std::string::npos)
      << report.groups[0].example;
  EXPECT_EQ(report.total, 37);
  EXPECT_EQ(report.per_kind.count("pg.conn"), 0u);
}

// The SQL behind a leaked result and the last SQL on a leaked connection:
// masked by default, whole with LEAKWATCH_SQL=full, absent with off.
TEST(PgPrograms, SqlBehindLeaksIsMaskedFullOrOff) {
  if (!RequirePostgres()) return;
  RunResult masked = RunProgram({ProgramPath("pg_result_loop_leak"), "4"}, {});
  ASSERT_EQ(masked.exit_code, 0) << masked.err;
  ExitReport report = ParseExitReport(masked.err);
  ASSERT_EQ(report.groups.size(), 1u) << masked.err;
  EXPECT_NE(report.groups[0].example.find(
                ", SQL: SELECT g FROM generate_series(?, ?) g"),
            std::string::npos)
      << report.groups[0].example;

  RunOptions full;
  full.env = {{"LEAKWATCH_SQL", "full"}};
  RunResult whole = RunProgram({ProgramPath("pg_result_loop_leak"), "4"}, full);
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  report = ParseExitReport(whole.err);
  ASSERT_EQ(report.groups.size(), 1u) << whole.err;
  // Literals kept (the example is one of the four batches).
  EXPECT_TRUE(std::regex_search(
      report.groups[0].example,
      std::regex(R"(, SQL: SELECT g FROM generate_series\(1, [1-4]\) g$)")))
      << report.groups[0].example;

  RunOptions off;
  off.env = {{"LEAKWATCH_SQL", "off"}};
  RunResult none = RunProgram({ProgramPath("pg_result_loop_leak"), "4"}, off);
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.err.find("SQL:"), std::string::npos) << none.err;
  EXPECT_TRUE(ParseExitReport(none.err).present);

  RunResult conn = RunProgram({ProgramPath("pg_conn_leak"), "3"}, {});
  ASSERT_EQ(conn.exit_code, 0) << conn.err;
  report = ParseExitReport(conn.err);
  ASSERT_EQ(report.groups.size(), 1u) << conn.err;
  EXPECT_NE(report.groups[0].example.find(
                ", last SQL: SELECT ? WHERE ? % ? = ?"),
            std::string::npos)
      << report.groups[0].example;
}

// LEAKWATCH_METRICS: the live file shows what the program holds (the file's
// format is checked by a strict parser in tests/unit/metrics_test.cc), and
// it is gone once the program has exited.
TEST(PgPrograms, MetricsFileShowsWhatIsHeldAndGoesAtExit) {
  if (!RequirePostgres()) return;
  TempDir dir;
  std::string pattern = dir.path() + "/leakwatch-%p.prom";
  std::string copy = dir.path() + "/copy.prom";
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300ms"}};
  RunResult r = RunWithMetrics("pg_metrics_hold", pattern, copy, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string text = ReadFile(copy);
  auto sample = [&](const std::string& name, const std::string& kind) {
    return MetricsSample(text, name, kind);
  };
  EXPECT_EQ(sample("leakwatch_handles_open", "pg.conn"), 3) << text;
  EXPECT_EQ(sample("leakwatch_handles_open", "pg.result"), 5) << text;
  EXPECT_EQ(sample("leakwatch_handles_acquired_total", "pg.result"), 6) << text;
  EXPECT_EQ(sample("leakwatch_handles_released_total", "pg.result"), 1) << text;
  EXPECT_EQ(sample("leakwatch_handles_past_threshold", "pg.result"), 5) << text;
  // The 3 connections were opened together and are still referenced: a
  // pool, not past any rule however long they rest.
  EXPECT_EQ(sample("leakwatch_handles_past_threshold", "pg.conn"), 0) << text;
  EXPECT_EQ(sample("leakwatch_leak_reports_total", "pg.result"), 5) << text;
  EXPECT_EQ(sample("leakwatch_connections_open", "pg.conn"), 3) << text;
  EXPECT_NE(text.find("dbname=\"leakwatch\",user=\"leakwatch\""),
            std::string::npos)
      << text;
  // Removed at exit: no leakwatch-*.prom is left in the directory.
  RunOptions plain;
  plain.preload = false;
  RunResult ls = RunProgram({"/bin/ls", dir.path()}, plain);
  EXPECT_EQ(ls.out, "copy.prom\n");
}

// Handles that live with their connection (a cancel handle, a statement):
// the leak rule is the tracker's, so the exit report's "past the threshold"
// and the metrics gauge say the same of them. One of each outlived its
// connection (past), one of each is held as long, beside its open
// connection (not past while the connection lives).
TEST(PgPrograms, ExitReportAndMetricsAgreeAboutHandlesLivingWithAParent) {
  if (!RequirePostgres() || !RequireMysql()) return;
  TempDir dir;
  std::string pattern = dir.path() + "/leakwatch-%p.prom";
  std::string copy = dir.path() + "/copy.prom";
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300"}};
  RunResult r = RunWithMetrics("parent_leaks", pattern, copy, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string metrics = ReadFile(copy);
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  for (const std::string kind : {"pg.cancel", "mysql.stmt"}) {
    long gauge =
        MetricsSample(metrics, "leakwatch_handles_past_threshold", kind);
    int held = 0, past = 0;
    for (const ExitGroup& g : report.groups) {
      if (g.kind != kind) continue;
      held += g.count;
      past += g.past_threshold;
    }
    EXPECT_EQ(held, 2) << kind << "\n" << r.err;
    EXPECT_EQ(gauge, 1) << kind << "\n" << metrics;
    EXPECT_EQ(past, 1) << kind << "\n" << r.err;
  }
}

// LEAKWATCH_EXITCODE: the CI gate.
TEST(PgPrograms, ExitCodeIsSetOnlyWhenSomethingUnsuppressedIsHeld) {
  if (!RequirePostgres()) return;
  RunOptions gate;
  gate.env = {{"LEAKWATCH_EXITCODE", "23"}};
  // Leaking: the status becomes 23, and the program's own buffered stdout
  // (a pipe here, so fully buffered) still arrives whole.
  RunResult leaking =
      RunProgram({ProgramPath("pg_result_loop_leak"), "3"}, gate);
  EXPECT_EQ(leaking.exit_code, 23) << leaking.err;
  EXPECT_EQ(leaking.out, "rows 6\n");
  EXPECT_TRUE(ParseExitReport(leaking.err).present);
  // Clean: the program's own status.
  RunResult clean = RunProgram({ProgramPath("pg_clean")}, gate);
  EXPECT_EQ(clean.exit_code, 7) << clean.err;
  // Slow, not leaked: a result reported live and released later.
  TempDir dir;
  std::string log = dir.path() + "/agent.log";
  RunOptions slow = gate;
  slow.env["LEAKWATCH_RESULT_THRESHOLD_MS"] = "1s";
  slow.env["LEAKWATCH_LOG"] = log;
  RunResult released = RunProgram({ProgramPath("pg_slow_result"), log}, slow);
  EXPECT_EQ(released.exit_code, 0) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("was released after"), std::string::npos);
  // Everything held is suppressed: nothing counts.
  std::string supp = dir.path() + "/all.supp";
  std::ofstream(supp) << "result:count_rows_in_batch\n";
  RunOptions suppressed = gate;
  suppressed.env["LEAKWATCH_SUPPRESSIONS"] = supp;
  RunResult hidden =
      RunProgram({ProgramPath("pg_result_loop_leak"), "3"}, suppressed);
  EXPECT_EQ(hidden.exit_code, 0) << hidden.err;
  // A bad value is said once and the program's status is kept.
  RunOptions bad;
  bad.env = {{"LEAKWATCH_EXITCODE", "300"}};
  RunResult ignored = RunProgram({ProgramPath("pg_result_loop_leak"), "3"}, bad);
  EXPECT_EQ(ignored.exit_code, 0);
  EXPECT_EQ(LinesWith(ignored.err, "LEAKWATCH_EXITCODE=\"300\"").size(), 1u)
      << ignored.err;
}

// LEAKWATCH_REPORT_INTERVAL: a daemon killed with SIGKILL never reaches the
// exit report; the periodic report is what tells.
TEST(PgPrograms, PeriodicReportSurvivesSigkill) {
  if (!RequirePostgres()) return;
  TempDir dir;
  std::string log = dir.path() + "/agent.log";
  RunOptions options;
  options.env = {{"LEAKWATCH_REPORT_INTERVAL", "500ms"},
                 {"LEAKWATCH_RESULT_THRESHOLD_MS", "200ms"},
                 {"LEAKWATCH_LOG", log}};
  RunResult r = RunProgram({ProgramPath("pg_killed_daemon"), log}, options);
  EXPECT_EQ(r.term_signal, 9) << r.err << ReadFile(log);
  std::string text = ReadFile(log);
  std::vector<std::string> headers = LinesWith(text, "periodic report for");
  ASSERT_GE(headers.size(), 1u) << text;
  EXPECT_NE(headers[0].find("3 handles held past the threshold, in 1 group"),
            std::string::npos)
      << headers[0];
  EXPECT_FALSE(LinesWith(text, "3 pg.result held past the threshold from site")
                   .empty())
      << text;
  EXPECT_NE(text.find(" in poll_job_queue"), std::string::npos) << text;
  EXPECT_FALSE(ParseExitReport(text).present) << text;  // SIGKILL: none
}

TEST(PgPrograms, CancelHandleNeverFreedIsReported) {
  if (!RequirePostgres()) return;
  RunResult r = RunProgram({ProgramPath("pg_cancel_leak")}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "pg.cancel");
  EXPECT_EQ(report.groups[0].count, 1);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "run_with_timeout")) << r.err;
}

TEST(PgPrograms, ResultHeldPastThresholdWarnsThenSaysReleased) {
  if (!RequirePostgres()) return;
  TempDir temp;
  const std::string& dir = temp.path();
  std::string log = dir + "/agent.log";
  RunOptions options;
  options.env = {{"LEAKWATCH_RESULT_THRESHOLD_MS", "1s"},
                 {"LEAKWATCH_LOG", log}};
  RunResult r = RunProgram({ProgramPath("pg_slow_result"), log}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err << ReadFile(log);
  EXPECT_EQ(r.err, "");  // everything went to the log file
  std::string text = ReadFile(log);
  std::smatch m;
  static const std::regex kWarning(
      R"(pg\.result 0x([0-9a-f]+) held ([0-9.]+) (s|ms) \(threshold 1 s\) by thread \d+, from connection 0x[0-9a-f]+ \(dbname=leakwatch[^)]*backend_pid=\d+\), SQL: SELECT g FROM generate_series\(\?, \?\) g, acquired at \(site \d+\):)");
  ASSERT_TRUE(std::regex_search(text, m, kWarning)) << text;
  std::string key = m[1];
  ASSERT_EQ(m[3], "s");
  EXPECT_GE(std::stod(m[2]), 1.0);
  size_t warning_at = m.position(0);
  EXPECT_NE(text.find(" in fetch_report_page"), std::string::npos) << text;
  std::regex released("pg\\.result 0x" + key +
                      " reported above was released after ([0-9.]+) s");
  ASSERT_TRUE(std::regex_search(text, m, released)) << text;
  EXPECT_GT(static_cast<size_t>(m.position(0)), warning_at);
  EXPECT_GE(std::stod(m[1]), 1.0);
  // Slow is not leaked: nothing is held at exit.
  EXPECT_FALSE(ParseExitReport(text).present) << text;
}

// A connection reported idle and then used by a 300 ms query: "in use
// again after" says how long it rested (at least the threshold), not how
// long the query took (it used to say 0 ms: the blocking call's start
// overwrote the activity time before the note was made).
TEST(PgPrograms, InUseAgainNoteSaysHowLongTheConnectionRested) {
  if (!RequirePostgres()) return;
  TempDir dir;
  std::string log = dir.path() + "/agent.log";
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "500"}, {"LEAKWATCH_LOG", log}};
  RunResult r = RunProgram({ProgramPath("pg_idle_then_query")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err << ReadFile(log);
  EXPECT_EQ(r.out, "rested\ndone\n");
  std::string text = ReadFile(log);
  std::smatch m;
  static const std::regex kAgain(
      R"(pg\.conn 0x[0-9a-f]+ reported above is in use again after ([0-9.]+) (s|ms) idle)");
  ASSERT_TRUE(std::regex_search(text, m, kAgain)) << text;
  const double idle_ms = std::stod(m[1]) * (m[2] == "s" ? 1000 : 1);
  EXPECT_GE(idle_ms, 500) << text;
}

TEST(PgPrograms, IdleConnectionWarnsButBusyOneDoesNot) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult r = RunProgram({ProgramPath("pg_idle_conn")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> idle_warnings =
      LinesWith(r.err, "(threshold 1 s, held");
  ASSERT_EQ(idle_warnings.size(), 1u) << r.err;
  EXPECT_NE(idle_warnings[0].find("pg.conn 0x"), std::string::npos);
  EXPECT_NE(r.err.find(" in open_idle_conn"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("open_busy_conn"), std::string::npos) << r.err;
  // Both were finished: the idle one gets its release note, no exit report.
  EXPECT_EQ(LinesWith(r.err, "reported above was released after").size(), 1u)
      << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
}

TEST(PgPrograms, ConnectionInALongQueryIsNotIdle) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult r = RunProgram({ProgramPath("pg_long_query")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "rollups done\n");
  EXPECT_EQ(r.err, "");
}

TEST(PgPrograms, EightThreadsLeakingFromOneFunctionAreOneGroup) {
  if (!RequirePostgres()) return;
  RunResult r = RunProgram({ProgramPath("pg_threads_leak")}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "pg.conn");
  EXPECT_EQ(report.groups[0].count, 8);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "open_worker_conn")) << r.err;
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "worker")) << r.err;
  EXPECT_EQ(report.total, 8);
}

TEST(PgPrograms, CleanProgramIsUnchangedAndSilent) {
  if (!RequirePostgres()) return;
  RunOptions native;
  native.preload = false;
  RunResult without = RunProgram({ProgramPath("pg_clean")}, native);
  RunOptions agent;
  agent.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult with = RunProgram({ProgramPath("pg_clean")}, agent);
  ASSERT_EQ(without.exit_code, 7) << without.err;
  EXPECT_EQ(with.exit_code, 7);
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, without.err);
  EXPECT_EQ(with.err, "clean program's own stderr line\n");
}

TEST(PgPrograms, StatsShowTheHooksFiredOnACleanProgram) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("pg_clean")}, options);
  ASSERT_EQ(r.exit_code, 7);
  std::smatch m;
  static const std::regex kConn(R"(pg\.conn acquired (\d+) released (\d+))");
  static const std::regex kResult(R"(pg\.result acquired (\d+) released (\d+))");
  static const std::regex kCancel(R"(pg\.cancel acquired (\d+) released (\d+))");
  ASSERT_TRUE(std::regex_search(r.err, m, kConn)) << r.err;
  EXPECT_EQ(std::stoi(m[1]), 3);  // PQconnectdb, PQconnectStart, failed connect
  EXPECT_EQ(m[1], m[2]);
  ASSERT_TRUE(std::regex_search(r.err, m, kResult)) << r.err;
  // exec, params, prepare, describe, prepared, copy, 2 from PQgetResult, empty
  EXPECT_EQ(std::stoi(m[1]), 9);
  EXPECT_EQ(m[1], m[2]);
  ASSERT_TRUE(std::regex_search(r.err, m, kCancel)) << r.err;
  EXPECT_EQ(std::stoi(m[1]), 1);
  EXPECT_EQ(m[1], m[2]);
  EXPECT_FALSE(ParseExitReport(r.err).present);
}

TEST(PgPrograms, BadSettingGetsOneLineAndTheDefault) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "soon"},
                 {"LEAKWATCH_STACK_DEPTH", "-3"}};
  RunResult r = RunProgram({ProgramPath("pg_clean")}, options);
  EXPECT_EQ(r.exit_code, 7);
  std::vector<std::string> lines = LinesWith(r.err, "leakwatch");
  ASSERT_EQ(lines.size(), 2u) << r.err;
  EXPECT_NE(lines[0].find("LEAKWATCH_THRESHOLD_MS=\"soon\""), std::string::npos);
  EXPECT_NE(lines[0].find("expected"), std::string::npos);
  EXPECT_NE(lines[1].find("LEAKWATCH_STACK_DEPTH=\"-3\""), std::string::npos);
  EXPECT_NE(r.err.find("clean program's own stderr line"), std::string::npos);
}

TEST(PgPrograms, LogFileNamedWithPid) {
  if (!RequirePostgres()) return;
  TempDir temp;
  const std::string& dir = temp.path();
  RunOptions options;
  options.env = {{"LEAKWATCH_LOG", dir + "/lw.%p.log"}};
  RunResult r = RunProgram({ProgramPath("pg_cancel_leak")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  RunOptions plain;
  plain.preload = false;
  RunResult ls =
      RunProgram({"/bin/sh", "-c", "cat " + dir + "/lw.*.log"}, plain);
  static const std::regex kPidInName(R"(leakwatch\[(\d+)\]: SUMMARY)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(ls.out, m, kPidInName)) << ls.out << ls.err;
  EXPECT_NE(ReadFile(dir + "/lw." + std::string(m[1]) + ".log"), "");
}

TEST(PgPrograms, ZeroThresholdMeansNoLiveReportsButStillAnExitReport) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "0"}};
  RunResult r = RunProgram({ProgramPath("pg_result_loop_leak"), "5"}, options);
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(LinesWith(r.err, "acquired at (site").size(), 0u) << r.err;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].count, 5);
  static const std::regex kOff(R"(live threshold off)");
  EXPECT_EQ(CountMatches(r.err, kOff), 1) << r.err;
}

}  // namespace
}  // namespace leakwatch::testing

namespace leakwatch::testing {
namespace {

// The demo (scripts/demo.sh): two leaks next to a busy pool connection.
TEST(PgPrograms, DemoServiceReportsItsTwoLeaksAndNotItsPool) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult r = RunProgram({ProgramPath("demo_service")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 2u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "pg.result");
  EXPECT_EQ(report.groups[0].count, 3);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "handle_user_lookup_request"));
  EXPECT_EQ(report.groups[1].kind, "pg.conn");
  EXPECT_EQ(report.groups[1].count, 2);
  EXPECT_TRUE(GroupHasFrame(report.groups[1], "handle_report_request"));
  // The pool connection, busy every 100 ms, is never warned about.
  EXPECT_EQ(r.err.find("open_pool_connection"), std::string::npos) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(backend pid (\d+))")))
      << r.out;
  std::regex pool_pid("backend_pid=" + std::string(m[1]) + "(\\D|$)");
  for (const std::string& line : LinesWith(r.err, " idle ")) {
    EXPECT_FALSE(std::regex_search(line, pool_pid)) << line;
  }
}

}  // namespace
}  // namespace leakwatch::testing
