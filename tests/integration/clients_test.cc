// Real clients no one here wrote — psql, pgbench, Python's psycopg2 — under
// the agent, against the real server.
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

const char kPgBin[] = "/usr/lib/postgresql/15/bin/";

TEST(Clients, PsqlSelectOneLeaksNothing) {
  if (!RequirePostgres()) return;
  RunOptions native;
  native.preload = false;
  RunResult without =
      RunProgram({std::string(kPgBin) + "psql", "-X", "-c", "select 1"}, native);
  RunResult with =
      RunProgram({std::string(kPgBin) + "psql", "-X", "-c", "select 1"}, {});
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_EQ(with.exit_code, 0);
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, "");

  RunOptions stats;
  stats.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult counted =
      RunProgram({std::string(kPgBin) + "psql", "-X", "-c", "select 1"}, stats);
  ASSERT_EQ(counted.exit_code, 0);
  KindTotals conn = ParseStats(counted.err, "pg.conn");
  KindTotals result = ParseStats(counted.err, "pg.result");
  EXPECT_GE(conn.acquired, 1) << counted.err;
  EXPECT_EQ(conn.acquired, conn.released) << counted.err;
  EXPECT_GE(result.acquired, 1) << counted.err;
  EXPECT_EQ(result.acquired, result.released) << counted.err;
  EXPECT_FALSE(ParseExitReport(counted.err).present) << counted.err;
}

TEST(Clients, PgbenchRunLeaksNothingAndTheTotalsMatchTheWork) {
  if (!RequirePostgres()) return;
  RunOptions native;
  native.preload = false;
  RunResult init = RunProgram(
      {std::string(kPgBin) + "pgbench", "-i", "-s", "1", "-q"}, native);
  ASSERT_EQ(init.exit_code, 0) << init.err;

  constexpr int kTransactions = 60;
  constexpr int kClients = 3;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}, {"LEAKWATCH_THRESHOLD_MS", "5s"}};
  options.timeout_s = 120;
  RunResult r = RunProgram({std::string(kPgBin) + "pgbench", "-n", "-S", "-t",
                            std::to_string(kTransactions), "-c",
                            std::to_string(kClients)},
                           options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("number of transactions actually processed: 180/180"),
            std::string::npos)
      << r.out;
  KindTotals conn = ParseStats(r.err, "pg.conn");
  KindTotals result = ParseStats(r.err, "pg.result");
  EXPECT_GE(conn.acquired, kClients + 1) << r.err;  // + the initial check
  EXPECT_EQ(conn.acquired, conn.released) << r.err;
  EXPECT_GE(result.acquired, kTransactions * kClients) << r.err;
  EXPECT_EQ(result.acquired, result.released) << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
  EXPECT_TRUE(LinesWith(r.err, "acquired at").empty()) << r.err;
}

TEST(Clients, Psycopg2ConnectionsHeldInAListAreWarnedLive) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "250ms"}};
  // One connection per request, 0.3 s apart (more than the threshold: not a
  // pool filled at once), each used once and kept in a list.
  RunResult r = RunProgram(
      {"/usr/bin/python3",
       std::string(LEAKWATCH_SOURCE_DIR) + "/tests/integration/psycopg2_hold.py",
       "6", "0.3"},
      options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "held 6 connections\n");
  // Every one of the 6 is accounted for: a warning line of its own, or
  // counted in a site's "... and N more" line.
  EXPECT_EQ(CountLiveWarnings(r.err, "pg.conn", "250 ms"), 6) << r.err;
  EXPECT_NE(r.err.find("dbname=leakwatch"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("cannot find the real"), std::string::npos) << r.err;
}

// psycopg2 keeps a closed connection's cancel handle until the Python
// object dies: a correct program that keeps closed connection objects around
// gets no warning (it used to get "pg.cancel ... outlived its connection").
TEST(Clients, Psycopg2ClosedConnectionsKeptAroundAreNotWarned) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "250ms"},
                 {"LEAKWATCH_EXITCODE", "9"}};
  RunResult r = RunProgram(
      {"/usr/bin/python3",
       std::string(LEAKWATCH_SOURCE_DIR) +
           "/tests/integration/psycopg2_closed_kept.py",
       "3", "1.5"},
      options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "kept 3 closed connections\n");
  EXPECT_TRUE(LinesWith(r.err, "leakwatch[").empty()) << r.err;
}

}  // namespace
}  // namespace leakwatch::testing
