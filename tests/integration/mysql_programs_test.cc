// Leaky and clean libmariadb programs (tests/programs/my_*.c) under the
// agent, against the real MariaDB server that scripts/test.sh starts
// (scripts/mysql-sandbox, MYSQL_TEST_* variables). Counts are exact.
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

// The group of the given kind (nullptr if none, or more than one).
const ExitGroup* GroupOf(const ExitReport& report, const std::string& kind) {
  const ExitGroup* found = nullptr;
  for (const ExitGroup& g : report.groups) {
    if (g.kind != kind) continue;
    if (found != nullptr) return nullptr;
    found = &g;
  }
  return found;
}

// "host=127.0.0.1 port=NNNN user=U db=D connection_id=": the identity text
// of a connection to the sandbox.
std::string SandboxIdentity() {
  MysqlSettings s = Mysql();
  return "host=" + s.host + " port=" + s.port + " user=" + s.user +
         " db=" + s.db + " connection_id=";
}

// Live warnings about `kind`: lines of their own ("leakwatch[P]: KIND 0x..."
// that are not release notes) plus the handles counted in a site's
// "... and N more KIND" lines.
int LiveWarnings(const std::string& text, const std::string& kind) {
  std::string k = std::regex_replace(kind, std::regex(R"(\.)"), R"(\.)");
  std::regex warning(R"(leakwatch\[\d+\]: )" + k + R"( 0x[0-9a-f]+ )");
  std::regex more(R"(\.\.\. and (\d+) more )" + k + R"( )");
  int n = 0;
  for (const std::string& line : LinesWith(text, kind)) {
    std::smatch m;
    if (line.find("reported above was released") != std::string::npos) continue;
    if (std::regex_search(line, m, more)) {
      n += std::stoi(m[1]);
    } else if (std::regex_search(line, warning)) {
      ++n;
    }
  }
  return n;
}

TEST(MysqlPrograms, ConnectionNeverClosedIsReportedAtExit) {
  if (!RequireMysql()) return;
  RunResult r = RunProgram({ProgramPath("my_conn_leak"), "7"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "found 4 of 7\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.conn");
  EXPECT_EQ(report.groups[0].count, 3);  // requests 1, 3 and 5
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "handle_lookup_request")) << r.err;
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "main")) << r.err;
  EXPECT_NE(report.groups[0].example.find(SandboxIdentity()), std::string::npos)
      << report.groups[0].example;
  EXPECT_EQ(report.groups[0].example.find("connection failed"),
            std::string::npos);
  EXPECT_EQ(report.total, 3);
  EXPECT_EQ(report.per_kind["mysql.conn"], 3);
  EXPECT_EQ(report.per_kind.size(), 1u) << r.err;
}

TEST(MysqlPrograms, StackStructConnectionNeverClosedIsReportedAtExit) {
  if (!RequireMysql()) return;
  RunResult r = RunProgram({ProgramPath("my_stack_conn_leak")}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m,
                                std::regex(R"(replica connection (\d+) )")))
      << r.out;
  std::string id = m[1];
  EXPECT_NE(r.out.find("1 of 1 replicas writable"), std::string::npos) << r.out;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.conn");
  EXPECT_EQ(report.groups[0].count, 1);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "check_replica_health")) << r.err;
  // The identity was recorded at connect time: the struct itself was
  // overwritten (scribble_stack) long before the report.
  EXPECT_TRUE(std::regex_search(
      report.groups[0].example,
      std::regex(SandboxIdentity() + id + "(\\D|$)")))
      << report.groups[0].example;
  EXPECT_EQ(report.total, 1);
}

TEST(MysqlPrograms, ReusedStackStructIsOneRecordReplacedEachTime) {
  if (!RequireMysql()) return;
  // The same stack slot, mysql_init()ed three times without a close: each
  // init replaces the previous record (DESIGN.md: counted, not reported).
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("my_stack_conn_leak"), "3"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string last_id;
  std::string out = r.out;
  std::smatch m;
  static const std::regex kId(R"(replica connection (\d+) )");
  while (std::regex_search(out, m, kId)) {
    last_id = m[1];
    out = m.suffix();
  }
  ASSERT_NE(last_id, "") << r.out;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.conn");
  EXPECT_EQ(report.groups[0].count, 1);
  EXPECT_TRUE(std::regex_search(report.groups[0].example,
                                std::regex("connection_id=" + last_id +
                                           "(\\D|$)")))
      << report.groups[0].example;
  KindTotals conn = ParseStats(r.err, "mysql.conn");
  EXPECT_EQ(conn.acquired, 3) << r.err;
  EXPECT_EQ(conn.released, 0) << r.err;
  EXPECT_EQ(conn.replaced, 2) << r.err;
}

TEST(MysqlPrograms, FailedConnectHandleNeverClosedIsReported) {
  if (!RequireMysql()) return;
  RunResult r = RunProgram({ProgramPath("my_failed_connect_leak")}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "primary unavailable (error 2002)\nusing fallback\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.conn");
  EXPECT_EQ(report.groups[0].count, 1);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "connect_primary")) << r.err;
  const std::string& example = report.groups[0].example;
  EXPECT_NE(example.find("host=127.0.0.1 port=1 "), std::string::npos)
      << example;
  EXPECT_NE(example.find("(connection failed)"), std::string::npos) << example;
  EXPECT_EQ(example.find("connection_id="), std::string::npos) << example;
  EXPECT_EQ(report.total, 1);  // the fallback connection was closed
}

TEST(MysqlPrograms, AbandonedUseResultsPinTheirConnections) {
  if (!RequireMysql()) return;
  RunResult r = RunProgram({ProgramPath("my_use_result_abandon"), "50"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "candidates from 50 shards, sum 203\n"
            "next query on shard 0: error 2014\n");  // commands out of sync
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 2u) << r.err;
  const ExitGroup* results = GroupOf(report, "mysql.result");
  const ExitGroup* conns = GroupOf(report, "mysql.conn");
  ASSERT_NE(results, nullptr) << r.err;
  ASSERT_NE(conns, nullptr) << r.err;
  EXPECT_EQ(results->count, 50);
  EXPECT_TRUE(GroupHasFrame(*results, "find_first_candidate")) << r.err;
  EXPECT_NE(results->example.find("unbuffered, pins its connection"),
            std::string::npos)
      << results->example;
  EXPECT_NE(results->example.find("from connection 0x"), std::string::npos)
      << results->example;
  EXPECT_NE(results->example.find("connection_id="), std::string::npos)
      << results->example;
  EXPECT_EQ(conns->count, 50);
  EXPECT_TRUE(GroupHasFrame(*conns, "open_shard_connection")) << r.err;
  // All 50 connections are pinned (the group's header counts them)...
  EXPECT_NE(conns->header.find("; 50 pinned by unbuffered results)"),
            std::string::npos)
      << conns->header;
  EXPECT_EQ(results->header.find("pinned"), std::string::npos)
      << results->header;
  // ... each by exactly one abandoned result.
  EXPECT_TRUE(std::regex_search(conns->example,
                                std::regex(R"(pinned by 1 unbuffered result\b)")))
      << conns->example;
  EXPECT_EQ(conns->example.find("unbuffered results"), std::string::npos)
      << conns->example;
  EXPECT_EQ(report.total, 100);
  EXPECT_EQ(report.per_kind["mysql.result"], 50);
  EXPECT_EQ(report.per_kind["mysql.conn"], 50);
  // Every line about a result says it pins its connection.
  for (const std::string& line : LinesWith(r.err, "mysql.result 0x")) {
    EXPECT_NE(line.find("unbuffered, pins its connection"), std::string::npos)
        << line;
  }
}

TEST(MysqlPrograms, AbandonedUseResultWarnsLiveThatItPinsItsConnection) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_RESULT_THRESHOLD_MS", "1s"}};
  RunResult r =
      RunProgram({ProgramPath("my_use_result_abandon"), "3", "2500"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(LiveWarnings(r.err, "mysql.result"), 3) << r.err;
  std::vector<std::string> lines = LinesWith(r.err, "mysql.result 0x");
  ASSERT_FALSE(lines.empty()) << r.err;
  for (const std::string& line : lines) {
    EXPECT_NE(line.find("unbuffered, pins its connection"), std::string::npos)
        << line;
  }
  // The connections are busy-then-pinned, idle only 2.5 s: under the general
  // 30 s threshold, so no live warning about them.
  EXPECT_EQ(LiveWarnings(r.err, "mysql.conn"), 0) << r.err;
  ExitReport report = ParseExitReport(r.err);
  EXPECT_EQ(report.per_kind["mysql.result"], 3) << r.err;
  EXPECT_EQ(report.per_kind["mysql.conn"], 3) << r.err;
}

TEST(MysqlPrograms, StoreResultsNeverFreedInALoopAreCountedExactly) {
  if (!RequireMysql()) return;
  RunResult r = RunProgram({ProgramPath("my_store_result_loop"), "37"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "rows 703\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.result");
  EXPECT_EQ(report.groups[0].count, 37);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "count_rows_in_batch")) << r.err;
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "main")) << r.err;
  // The SQL behind the result (the batch number is part of a table name, not
  // a literal, so it stays).
  EXPECT_NE(report.groups[0].example.find("SQL: SELECT seq FROM seq_1_to_"),
            std::string::npos)
      << report.groups[0].example;
  // The result names the connection it came from, and that connection's
  // identity, although the connection itself was closed.
  const std::string& example = report.groups[0].example;
  EXPECT_NE(example.find("from connection 0x"), std::string::npos) << example;
  EXPECT_NE(example.find("(" + SandboxIdentity()), std::string::npos)
      << example;
  EXPECT_EQ(example.find("unbuffered"), std::string::npos) << example;
  EXPECT_EQ(report.total, 37);
  EXPECT_EQ(report.per_kind.count("mysql.conn"), 0u);
}

TEST(MysqlPrograms, StatementsNeverClosedAreReportedAtExit) {
  if (!RequireMysql()) return;
  RunResult r = RunProgram({ProgramPath("my_stmt_leak"), "8"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "wrote 4 of 8 audit rows\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.stmt");
  // ids 1, 3, 5, 7 (prepare failed) and 2, 6 (early return); 0 and 4 closed.
  EXPECT_EQ(report.groups[0].count, 6);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "write_audit_row")) << r.err;
  EXPECT_NE(report.groups[0].example.find("from connection 0x"),
            std::string::npos)
      << report.groups[0].example;
  EXPECT_NE(report.groups[0].example.find(SandboxIdentity()),
            std::string::npos)
      << report.groups[0].example;
  EXPECT_EQ(report.total, 6);
  EXPECT_EQ(report.per_kind.count("mysql.conn"), 0u);  // it was closed
}

TEST(MysqlPrograms, StatementsWarnLiveOnlyOnceTheyOutliveTheirConnection) {
  if (!RequireMysql()) return;
  // Statements held 2.5 s on a busy connection: not a leak (statement
  // caches). Then the connection is closed and the program runs 2.5 s more:
  // now each of the 6 unclosed statements outlives its connection by more
  // than the 1 s threshold.
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult r =
      RunProgram({ProgramPath("my_stmt_leak"), "8", "2500", "2500"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string marker = "my_stmt_leak: closing the connection\n";
  size_t closed_at = r.err.find(marker);
  ASSERT_NE(closed_at, std::string::npos) << r.err;
  std::string before = r.err.substr(0, closed_at);
  std::string after = r.err.substr(closed_at + marker.size());
  EXPECT_EQ(LiveWarnings(before, "mysql.stmt"), 0) << r.err;
  EXPECT_EQ(LiveWarnings(before, "mysql.conn"), 0) << r.err;  // busy
  EXPECT_EQ(LiveWarnings(after, "mysql.stmt"), 6) << r.err;
  EXPECT_NE(after.find(" in write_audit_row"), std::string::npos) << r.err;
  ExitReport report = ParseExitReport(after);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.stmt");
  EXPECT_EQ(report.groups[0].count, 6);
  EXPECT_EQ(report.groups[0].past_threshold, 6) << r.err;
}

TEST(MysqlPrograms, ChangeUserAndAutoReconnectKeepOneRecordWithTheNewIdentity) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("my_reconnect_leak")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.out, m, std::regex(R"(connection_id before (\d+) after (\d+))")))
      << r.out;
  std::string before = m[1], after = m[2];
  ASSERT_NE(before, after);
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "mysql.conn");
  EXPECT_EQ(report.groups[0].count, 1);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "open_session")) << r.err;
  // mysql_change_user moved it to <db>_other, the reconnect kept that, and
  // mysql_select_db then moved it to <db>_third.
  MysqlSettings my = Mysql();
  std::string identity = "host=" + my.host + " port=" + my.port + " user=" +
                         my.user + " db=" + my.db + "_third connection_id=";
  EXPECT_TRUE(std::regex_search(report.groups[0].example,
                                std::regex(identity + after + "(\\D|$)")))
      << report.groups[0].example;
  // The library's own mysql_init(&tmp) and mysql_close(user's handle) inside
  // the reconnect are not the program's: the session and the admin
  // connection, one of them closed; nothing replaced, nothing misused.
  KindTotals conn = ParseStats(r.err, "mysql.conn");
  EXPECT_EQ(conn.acquired, 2) << r.err;
  EXPECT_EQ(conn.released, 1) << r.err;
  EXPECT_EQ(conn.replaced, 0) << r.err;
  EXPECT_EQ(report.total, 1);
}

TEST(MysqlPrograms, NonBlockingApiUsedCorrectlyIsSilent) {
  if (!RequireMysql()) return;
  RunOptions native;
  native.preload = false;
  RunResult without = RunProgram({ProgramPath("my_async_clean")}, native);
  RunOptions agent;
  agent.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult with = RunProgram({ProgramPath("my_async_clean")}, agent);
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_EQ(without.out,
            "connection 0: 3 rows\nconnection 1: 4 rows\n"
            "streamed 10 rows, sum 55\nprepared 1 parameter\n"
            "closed 2 connections\n");
  EXPECT_EQ(with.exit_code, 0);
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, "");
}

TEST(MysqlPrograms, NonBlockingApiStatsCountEachHandleOnce) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("my_async_clean")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  KindTotals conn = ParseStats(r.err, "mysql.conn");
  KindTotals result = ParseStats(r.err, "mysql.result");
  KindTotals stmt = ParseStats(r.err, "mysql.stmt");
  EXPECT_EQ(conn.acquired, 2) << r.err;
  EXPECT_EQ(conn.released, 2) << r.err;
  EXPECT_EQ(result.acquired, 3) << r.err;  // 2 stored, 1 unbuffered
  EXPECT_EQ(result.released, 3) << r.err;
  EXPECT_EQ(stmt.acquired, 1) << r.err;
  EXPECT_EQ(stmt.released, 1) << r.err;
  EXPECT_EQ(conn.replaced + result.replaced + stmt.replaced, 0) << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
}

TEST(MysqlPrograms, NonBlockingApiLeaksAreReportedOncePerHandle) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("my_async_leak")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "feature flags: 5\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 2u) << r.err;
  const ExitGroup* result = GroupOf(report, "mysql.result");
  const ExitGroup* conn = GroupOf(report, "mysql.conn");
  ASSERT_NE(result, nullptr) << r.err;
  ASSERT_NE(conn, nullptr) << r.err;
  EXPECT_EQ(result->count, 1);
  EXPECT_EQ(conn->count, 1);
  // The stacks are the program's (not the library's coroutine stack).
  EXPECT_TRUE(GroupHasFrame(*result, "query_async")) << r.err;
  EXPECT_TRUE(GroupHasFrame(*result, "load_feature_flags")) << r.err;
  EXPECT_TRUE(GroupHasFrame(*conn, "connect_async")) << r.err;
  EXPECT_TRUE(GroupHasFrame(*conn, "load_feature_flags")) << r.err;
  EXPECT_NE(conn->example.find(SandboxIdentity()), std::string::npos)
      << conn->example;
  EXPECT_NE(result->example.find("from connection 0x"), std::string::npos)
      << result->example;
  EXPECT_EQ(result->example.find("unbuffered"), std::string::npos)
      << result->example;
  EXPECT_EQ(report.total, 2);
  KindTotals conn_stats = ParseStats(r.err, "mysql.conn");
  KindTotals result_stats = ParseStats(r.err, "mysql.result");
  EXPECT_EQ(conn_stats.acquired, 1) << r.err;
  EXPECT_EQ(conn_stats.released, 0) << r.err;
  EXPECT_EQ(result_stats.acquired, 1) << r.err;
  EXPECT_EQ(result_stats.released, 0) << r.err;
}

TEST(MysqlPrograms, CleanProgramIsUnchangedAndSilent) {
  if (!RequireMysql()) return;
  RunOptions native;
  native.preload = false;
  RunResult without = RunProgram({ProgramPath("my_clean")}, native);
  RunOptions agent;
  agent.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult with = RunProgram({ProgramPath("my_clean")}, agent);
  ASSERT_EQ(without.exit_code, 7) << without.err;
  EXPECT_NE(without.out.find("processes listed: yes\n"), std::string::npos)
      << without.out;
  EXPECT_NE(without.out.find("changed user\n"), std::string::npos)
      << without.out;
  EXPECT_EQ(with.exit_code, 7);
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, without.err);
  EXPECT_EQ(with.err, "clean program's own stderr line\n");
}

TEST(MysqlPrograms, StatsShowTheHooksFiredOnACleanProgram) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("my_clean")}, options);
  ASSERT_EQ(r.exit_code, 7) << r.err;
  KindTotals conn = ParseStats(r.err, "mysql.conn");
  KindTotals result = ParseStats(r.err, "mysql.result");
  KindTotals stmt = ParseStats(r.err, "mysql.stmt");
  // mysql_init(NULL), mysql_init(&m), the failed connect.
  EXPECT_EQ(conn.acquired, 3) << r.err;
  EXPECT_EQ(conn.released, 3) << r.err;
  // store, use (to the end), use (freed half-way), 2 of a multi-statement
  // query, list_dbs, list_tables, list_fields, list_processes,
  // stmt_result_metadata — list_dbs/list_processes call mysql_store_result
  // inside the library: counted once.
  EXPECT_EQ(result.acquired, 10) << r.err;
  EXPECT_EQ(result.released, 10) << r.err;
  EXPECT_EQ(stmt.acquired, 1) << r.err;
  EXPECT_EQ(stmt.released, 1) << r.err;
  EXPECT_EQ(conn.replaced + result.replaced + stmt.replaced, 0) << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
}

TEST(MysqlPrograms, TrackWithoutMysqlLeavesMysqlProgramsAlone) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_TRACK", "pg"}, {"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult r = RunProgram({ProgramPath("my_conn_leak"), "7"}, options);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "found 4 of 7\n");
  EXPECT_EQ(r.err, "");  // no report at all

  RunResult pinned =
      RunProgram({ProgramPath("my_use_result_abandon"), "5"}, options);
  EXPECT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_EQ(pinned.out,
            "candidates from 5 shards, sum 17\n"
            "next query on shard 0: error 2014\n");
  EXPECT_EQ(pinned.err, "");

  // With stats: the hooks ran (forwarding only) but recorded nothing.
  options.env["LEAKWATCH_STATS"] = "1";
  RunResult stats = RunProgram({ProgramPath("my_clean")}, options);
  EXPECT_EQ(stats.exit_code, 7) << stats.err;
  EXPECT_EQ(stats.err.find("mysql."), std::string::npos) << stats.err;
  EXPECT_FALSE(ParseExitReport(stats.err).present) << stats.err;
}

// A connection reported idle and then used by a 300 ms query: "in use
// again" says how long it rested, not how long the query took.
TEST(MysqlPrograms, InUseAgainNoteSaysHowLongTheConnectionRested) {
  if (!RequireMysql()) return;
  TempDir dir;
  std::string log = dir.path() + "/agent.log";
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "500"}, {"LEAKWATCH_LOG", log}};
  RunResult r = RunProgram({ProgramPath("my_idle_then_query")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err << ReadFile(log);
  EXPECT_EQ(r.out, "rested\ndone\n");
  std::string text = ReadFile(log);
  std::smatch m;
  static const std::regex kAgain(
      R"(mysql\.conn 0x[0-9a-f]+ reported above is in use again after ([0-9.]+) (s|ms) idle)");
  ASSERT_TRUE(std::regex_search(text, m, kAgain)) << text;
  const double idle_ms = std::stod(m[1]) * (m[2] == "s" ? 1000 : 1);
  EXPECT_GE(idle_ms, 500) << text;
}

}  // namespace
}  // namespace leakwatch::testing
