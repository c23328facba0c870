// Real MySQL/MariaDB clients no one here wrote — the `mariadb` command-line
// client and Python's MySQLdb — under the agent, against the real server
// (scripts/mysql-sandbox).
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

const char kMariadb[] = "/usr/bin/mariadb";
const char kPython[] = "/usr/bin/python3";  // Debian's, with python3-mysqldb

std::string Script(const std::string& name) {
  return std::string(LEAKWATCH_SOURCE_DIR) + "/tests/integration/" + name;
}

// The mariadb client, explicitly pointed at the sandbox (no option files).
std::vector<std::string> MariadbCommand(const std::string& sql) {
  MysqlSettings s = Mysql();
  return {kMariadb, "--no-defaults", "--protocol=TCP", "-h", s.host,
          "-P",     s.port,          "-u",             s.user, "-D",
          s.db,     "-e",            sql};
}

RunOptions WithPassword(RunOptions options) {
  options.env["MYSQL_PWD"] = Mysql().password;  // "" = unset
  return options;
}

const char kCliStatements[] =
    "select 1; create temporary table cli_t (i int); "
    "insert into cli_t values (1), (2); select * from cli_t;";

TEST(MysqlClients, MariadbCliRunningStatementsIsUntouchedAndSilent) {
  if (!RequireMysql()) return;
  RunOptions native;
  native.preload = false;
  RunResult without =
      RunProgram(MariadbCommand(kCliStatements), WithPassword(native));
  RunOptions agent;
  agent.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult with = RunProgram(MariadbCommand(kCliStatements),
                              WithPassword(agent));
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_EQ(without.out, "1\n1\ni\n1\n2\n");
  EXPECT_EQ(with.exit_code, 0) << with.err;
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, "");
}

// Debian 12's /usr/bin/mariadb does not use libmariadb.so.3: it carries its
// own copy of the client library, linked in statically (it defines and
// exports mysql_real_connect & co. itself and calls them directly, not
// through the PLT). LD_PRELOAD cannot interpose on such calls (DESIGN.md:
// "a statically linked client library is invisible to the hooks"), so the
// agent sees no MySQL handle in it. This test pins that down, so that the day
// the binary links libmariadb dynamically it fails and tells us to assert the
// totals instead (mysql.conn acquired == released >= 1, mysql.result
// acquired == released >= 2), as the MySQLdb test does.
TEST(MysqlClients, MariadbCliEmbedsItsClientLibraryInvisibleToTheHooks) {
  if (!RequireMysql()) return;
  RunOptions plain;
  plain.preload = false;
  RunResult symbols =
      RunProgram({"/usr/bin/nm", "-D", "--defined-only", kMariadb}, plain);
  ASSERT_EQ(symbols.exit_code, 0) << symbols.err;
  bool embeds = std::regex_search(symbols.out,
                                  std::regex(R"( T mysql_real_connect\n)"));
  RunResult deps = RunProgram({"/usr/bin/ldd", kMariadb}, plain);
  bool links_dynamically =
      deps.out.find("libmariadb.so") != std::string::npos ||
      deps.out.find("libmysqlclient.so") != std::string::npos;
  ASSERT_TRUE(embeds && !links_dynamically)
      << kMariadb << " now links the client library dynamically: assert the "
      << "stats totals here.\n" << deps.out;

  RunOptions stats;
  stats.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram(MariadbCommand(kCliStatements), WithPassword(stats));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n1\ni\n1\n2\n");
  std::vector<std::string> lines = LinesWith(r.err, "leakwatch[");
  ASSERT_EQ(lines.size(), 1u) << r.err;  // the stats line, nothing else
  EXPECT_NE(lines[0].find("stats: "), std::string::npos) << r.err;
  EXPECT_EQ(lines[0].find("mysql."), std::string::npos) << r.err;
}

TEST(MysqlClients, MysqldbCleanProgramLeaksNothing) {
  if (!RequireMysql()) return;
  RunOptions native;
  native.preload = false;
  RunResult without =
      RunProgram({kPython, Script("mysqldb_clean.py")}, native);
  RunOptions agent;
  agent.env = {{"LEAKWATCH_THRESHOLD_MS", "1000"}};
  RunResult with = RunProgram({kPython, Script("mysqldb_clean.py")}, agent);
  ASSERT_EQ(without.exit_code, 0) << without.err;
  EXPECT_EQ(without.out,
            "buffered ((1, 'one'), (2, 'two'), (3, 'three'))\n"
            "count 2\nunbuffered sum 5050\nsecond connection 2\n");
  EXPECT_EQ(with.exit_code, 0) << with.err;
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, "");
}

TEST(MysqlClients, MysqldbStatsShowTheHooksFiredWithTheRightTotals) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({kPython, Script("mysqldb_clean.py")}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  KindTotals conn = ParseStats(r.err, "mysql.conn");
  KindTotals result = ParseStats(r.err, "mysql.result");
  EXPECT_EQ(conn.acquired, 2) << r.err;  // two MySQLdb.connect()
  EXPECT_EQ(conn.released, 2) << r.err;
  // The four SELECTs (MySQLdb 1.4.6 runs no result-returning query of its
  // own; statements without a result set give no MYSQL_RES).
  EXPECT_EQ(result.acquired, 4) << r.err;
  EXPECT_EQ(result.acquired, result.released) << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
  EXPECT_EQ(r.err.find("cannot find the real"), std::string::npos) << r.err;
}

TEST(MysqlClients, MysqldbConnectionsHeldInAListAreWarnedLive) {
  if (!RequireMysql()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "250ms"}};
  // One connection per request, 0.3 s apart (more than the threshold: not a
  // pool filled at once), each used once and kept in a list.
  RunResult r =
      RunProgram({kPython, Script("mysqldb_hold.py"), "6", "0.3"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "held 6 connections\n");
  // Every one of the 6 is accounted for: a warning line of its own, or
  // counted in a site's "... and N more" line.
  EXPECT_EQ(CountLiveWarnings(r.err, "mysql.conn", "250 ms"), 6) << r.err;
  MysqlSettings s = Mysql();
  EXPECT_NE(r.err.find("host=" + s.host + " port=" + s.port + " user=" +
                       s.user + " db=" + s.db + " connection_id="),
            std::string::npos)
      << r.err;
  // The native stack ends in MySQLdb's extension module.
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(\(/\S*/_mysql\.\S+\.so\+0x)")))
      << r.err;
  // The list goes away when main() returns: Python closes them all before
  // exit, so nothing is held at exit — live warnings are what catch this.
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
  EXPECT_EQ(r.err.find("cannot find the real"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace leakwatch::testing
