// Real clients no one here wrote — psql, pgbench, Python's psycopg2 — under
// the agent, against the real server.
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

const char kPgBin[] = "/usr/lib/postgresql/15/bin/";

struct KindStats {
  long acquired = -1;
  long released = -1;
};

KindStats StatsFor(const std::string& text, const std::string& kind) {
  std::regex re(std::regex_replace(kind, std::regex(R"(\.)"), R"(\.)") +
                R"( acquired (\d+) released (\d+))");
  std::smatch m;
  KindStats s;
  if (std::regex_search(text, m, re)) {
    s.acquired = std::stol(m[1]);
    s.released = std::stol(m[2]);
  }
  return s;
}

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
  KindStats conn = StatsFor(counted.err, "pg.conn");
  KindStats result = StatsFor(counted.err, "pg.result");
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
  KindStats conn = StatsFor(r.err, "pg.conn");
  KindStats result = StatsFor(r.err, "pg.result");
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
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "500ms"}};
  RunResult r = RunProgram(
      {"/usr/bin/python3", std::string(LEAKWATCH_SOURCE_DIR) +
                               "/tests/integration/psycopg2_hold.py"},
      options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "held 20 connections\n");
  // Every one of the 20 is accounted for: a warning line of its own, or
  // counted in a site's "... and N more" line.
  static const std::regex kWarning(R"(: pg\.conn 0x[0-9a-f]+ idle [0-9.]+ m?s \(threshold 500 ms)");
  static const std::regex kMore(R"(\.\.\. and (\d+) more pg\.conn from site \d+ past the threshold)");
  int warned = static_cast<int>(std::distance(
      std::sregex_iterator(r.err.begin(), r.err.end(), kWarning),
      std::sregex_iterator()));
  for (std::sregex_iterator it(r.err.begin(), r.err.end(), kMore), end;
       it != end; ++it) {
    warned += std::stoi((*it)[1]);
  }
  EXPECT_EQ(warned, 20) << r.err;
  EXPECT_NE(r.err.find("dbname=leakwatch"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("cannot find the real"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace leakwatch::testing
