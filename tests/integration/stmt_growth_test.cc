// Statements on a long-lived connection (README, "What it reports"): one
// leaked per request is a growing statement site, reported live while the
// connection stays open; a fixed cache used by every request, and statements
// deallocated when done, are never reported. MariaDB (mysql.stmt) and
// PostgreSQL named prepared statements (pg.prepared).
//
// The programs wait for the agent's warnings in its log before they go on,
// so the counts in the warnings are exact however loaded the machine is:
// two statements idle 1.5 thresholds apart (the first warning: 2), two more
// (the doubling: 4).
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

struct LoggedRun {
  RunResult run;
  std::string log;  // what the agent wrote (LEAKWATCH_LOG)
};

// `program MODE LOG` with a 300 ms statement threshold, connections judged
// only after a minute (the one connection rests while the program waits),
// and reachable handles listed apart at exit.
LoggedRun RunLogged(const std::string& program, const std::string& mode,
                    std::map<std::string, std::string> env = {}) {
  TempDir dir;
  const std::string log = dir.path() + "/agent.log";
  RunOptions options;
  options.env = {{"LEAKWATCH_STMT_THRESHOLD_MS", "300"},
                 {"LEAKWATCH_CONN_THRESHOLD_MS", "60000"},
                 {"LEAKWATCH_EXIT_REACHABLE", "report"},
                 {"LEAKWATCH_LOG", log}};
  for (const auto& [name, value] : env) options.env[name] = value;
  LoggedRun r;
  r.run = RunProgram({ProgramPath(program), mode, log}, options);
  r.log = ReadFile(log);
  return r;
}

// The growth warnings of `kind` (`what`: "statements" or "prepared
// statements") in `log`, which must be exactly the first one (2, with its
// stack naming `function`) and one doubling (now 4), for one site.
void ExpectTwoAndThenFour(const std::string& log, const std::string& kind,
                          const std::string& what,
                          const std::string& function) {
  std::vector<std::string> lines = LinesWith(log, "growing " + kind + " site");
  ASSERT_EQ(lines.size(), 2u) << log;
  std::smatch first, second;
  ASSERT_TRUE(std::regex_match(
      lines[0], first,
      std::regex(R"(leakwatch\[\d+\]: growing )" + kind +
                 R"( site (\d+): 2 )" + what +
                 R"( idle and never used again \(prepared over [0-9.]+ m?s, )"
                 R"(oldest [0-9.]+ m?s, threshold 300 ms\), acquired at:)")))
      << lines[0];
  ASSERT_TRUE(std::regex_match(
      lines[1], second,
      std::regex(R"(leakwatch\[\d+\]: growing )" + kind +
                 R"( site (\d+): now 4 )" + what +
                 R"( idle and never used again \(doubled since the last )"
                 R"(warning; prepared over [0-9.]+ m?s, oldest [0-9.]+ )"
                 R"(m?s\))")))
      << lines[1];
  EXPECT_EQ(first[1], second[1]) << log;
  // The first warning carries the stack of the site.
  size_t stack = log.find(lines[0]) + lines[0].size();
  EXPECT_NE(log.find(" in " + function + " ", stack), std::string::npos)
      << log;
  EXPECT_LT(log.find(" in " + function + " ", stack), log.find(lines[1]))
      << log;
}

// The exit report: the 4 statements, convicted by their growing site
// although still reachable through their open connection.
void ExpectGrowingGroupAtExit(const std::string& log, const std::string& kind) {
  ExitReport report = ParseExitReport(log);
  ASSERT_TRUE(report.present) << log;
  ASSERT_EQ(report.groups.size(), 1u) << log;
  const ExitGroup& g = report.groups[0];
  EXPECT_EQ(g.kind, kind);
  EXPECT_EQ(g.count, 4);
  EXPECT_EQ(g.past_threshold, 4) << g.header;
  EXPECT_NE(g.header.find("; 4 idle and never used again, growing site"),
            std::string::npos)
      << g.header;
  EXPECT_NE(g.example.find("never used again (growing site)"),
            std::string::npos)
      << g.example;
  EXPECT_NE(g.example.find("from connection 0x"), std::string::npos)
      << g.example;
  EXPECT_EQ(report.total, 4);
}

TEST(StmtGrowth, MysqlStatementLeakedPerRequestIsAGrowingSite) {
  if (!RequireMysql()) return;
  LoggedRun r = RunLogged("my_stmt_per_request", "leak");
  ASSERT_EQ(r.run.exit_code, 0) << r.run.err << r.log;
  EXPECT_EQ(r.run.out, "served 6 requests, 4 statements leaked\n");
  ExpectTwoAndThenFour(r.log, "mysql.stmt", "statements", "lookup_user");
  // Not one by one: the statements live with their open connection.
  EXPECT_EQ(CountLiveWarnings(r.log, "mysql.stmt", "300 ms"), 0) << r.log;
  ExpectGrowingGroupAtExit(r.log, "mysql.stmt");
}

TEST(StmtGrowth, MysqlStatementCacheIsNeverReported) {
  if (!RequireMysql()) return;
  LoggedRun r = RunLogged("my_stmt_per_request", "cache");
  ASSERT_EQ(r.run.exit_code, 0) << r.run.err << r.log;
  EXPECT_EQ(r.run.out, "served 6 requests from a cache of 4 statements\n");
  EXPECT_TRUE(LinesWith(r.log, "growing ").empty()) << r.log;
  EXPECT_EQ(CountLiveWarnings(r.log, "mysql.stmt", "300 ms"), 0) << r.log;
  // At exit the cache is still held, reachable, convicted by no rule.
  EXPECT_FALSE(ParseExitReport(r.log).present) << r.log;
  EXPECT_EQ(LinesWith(r.log, "  4 mysql.stmt from site ").size(), 1u)
      << r.log;
}

TEST(StmtGrowth, PgPreparedStatementPerRequestIsAGrowingSite) {
  if (!RequirePostgres()) return;
  LoggedRun r = RunLogged("pg_prepared_per_request", "leak");
  ASSERT_EQ(r.run.exit_code, 0) << r.run.err << r.log;
  EXPECT_EQ(r.run.out, "served 4 requests, 4 prepared statements left\n");
  ExpectTwoAndThenFour(r.log, "pg.prepared", "prepared statements",
                       "prepare_lookup");
  EXPECT_EQ(CountLiveWarnings(r.log, "pg.prepared", "300 ms"), 0) << r.log;
  ExpectGrowingGroupAtExit(r.log, "pg.prepared");
  ExitReport report = ParseExitReport(r.log);
  ASSERT_EQ(report.groups.size(), 1u);
  EXPECT_NE(report.groups[0].example.find(
                "SQL: SELECT name FROM users WHERE id = $1"),
            std::string::npos)
      << report.groups[0].example;
}

TEST(StmtGrowth, PgPreparedStatementsReusedByNameAreNeverReported) {
  if (!RequirePostgres()) return;
  LoggedRun r = RunLogged("pg_prepared_per_request", "cache",
                          {{"LEAKWATCH_STATS", "1"}});
  ASSERT_EQ(r.run.exit_code, 0) << r.run.err << r.log;
  EXPECT_TRUE(LinesWith(r.log, "growing ").empty()) << r.log;
  EXPECT_EQ(CountLiveWarnings(r.log, "pg.prepared", "300 ms"), 0) << r.log;
  EXPECT_FALSE(ParseExitReport(r.log).present) << r.log;
  // The 4 (3 by PQprepare, 1 by PQsendPrepare) are reachable through their
  // connection: listed apart.
  KindTotals prepared = ParseStats(r.log, "pg.prepared");
  EXPECT_EQ(prepared.acquired, 4) << r.log;
  EXPECT_EQ(prepared.released, 0) << r.log;
  EXPECT_NE(r.log.find("(4 pg.prepared, 1 pg.conn)"), std::string::npos)
      << r.log;
}

TEST(StmtGrowth, PgDeallocatedAndFinishedStatementsAreNeverReported) {
  if (!RequirePostgres()) return;
  LoggedRun r = RunLogged("pg_prepared_per_request", "dealloc",
                          {{"LEAKWATCH_STATS", "1"}});
  ASSERT_EQ(r.run.exit_code, 0) << r.run.err << r.log;
  EXPECT_EQ(r.run.out, "served 6 requests, every statement deallocated\n");
  // DEALLOCATE (three spellings), DEALLOCATE ALL and PQfinish: nothing left
  // to grow, nothing outlives its connection.
  std::vector<std::string> mentions = LinesWith(r.log, "pg.prepared");
  ASSERT_EQ(mentions.size(), 1u) << r.log;  // the stats line
  EXPECT_NE(mentions[0].find("stats: "), std::string::npos) << r.log;
  EXPECT_EQ(ParseStats(r.log, "pg.prepared").acquired, 10) << r.log;
  EXPECT_FALSE(ParseExitReport(r.log).present) << r.log;
}

}  // namespace
}  // namespace leakwatch::testing
