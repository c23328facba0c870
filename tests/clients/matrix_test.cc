// The client matrix: for each real client, a leaky script (exact counts of
// live warnings and in the exit report, LEAKWATCH_EXITCODE fires, the
// script's own output unchanged) and a clean one (nothing from the agent,
// stdout, stderr and exit status identical to a run without it), against
// the servers scripts/test.sh starts.
//
// The leaky scripts keep their leaked handles until the agent's log has a
// warning for each (they read LEAKWATCH_LOG), so the counts do not depend on
// the machine's load. Handles an interpreter frees only while it shuts down
// (Python's finalization, Perl's global destruction, Ruby's finalizers at
// exit, PHP's request shutdown) were leaked by the script: they are in the
// exit report, marked "released only at interpreter shutdown".
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

using Counts = std::map<std::string, int>;

std::string Script(const std::string& name) {
  return std::string(LEAKWATCH_SOURCE_DIR) + "/tests/clients/" + name;
}

std::vector<std::string> Python(const std::string& script,
                                const std::string& arg = "") {
  std::vector<std::string> argv = {"/usr/bin/python3", Script(script)};
  if (!arg.empty()) argv.push_back(arg);
  return argv;
}

std::vector<std::string> Sysbench(const std::string& driver) {
  std::vector<std::string> argv = {"/usr/bin/sysbench",
                                   Script("sysbench_clean.lua"),
                                   "--db-driver=" + driver};
  if (driver == "pgsql") {
    for (const char* v : {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE"}) {
      const char* value = std::getenv(v);
      std::string option = std::string(v).substr(2);
      for (char& c : option) c = static_cast<char>(std::tolower(c));
      if (option == "database") option = "db";
      argv.push_back("--pgsql-" + option + "=" + (value ? value : ""));
    }
  } else {
    MysqlSettings s = Mysql();
    argv.insert(argv.end(),
                {"--mysql-host=" + s.host, "--mysql-port=" + s.port,
                 "--mysql-user=" + s.user, "--mysql-password=" + s.password,
                 "--mysql-db=" + s.db});
  }
  argv.insert(argv.end(), {"--threads=2", "--events=8", "--time=0", "run"});
  return argv;
}

// The agent's settings for both kinds of row; the exit report's reachable
// section keeps the agent's default (listed apart, not counted).
RunOptions AgentOptions(const std::string& threshold) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", threshold},
                 {"LEAKWATCH_EXITCODE", "9"},
                 {"LEAKWATCH_EXIT_REACHABLE", ""}};
  return options;
}

// Clean: the same run twice, without and with the agent (a 200 ms threshold,
// shorter than the scripts' pauses between bursts): nothing may differ.
void ExpectClean(const std::vector<std::string>& argv) {
  RunOptions native;
  native.preload = false;
  RunResult without = RunProgram(argv, native);
  ASSERT_EQ(without.exit_code, 0) << without.out << without.err;
  RunResult with = RunProgram(argv, AgentOptions("200"));
  EXPECT_EQ(with.exit_code, without.exit_code) << with.err;
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, without.err);
  EXPECT_TRUE(LinesWith(with.err, "leakwatch[").empty()) << with.err;
}

struct Leaks {
  Counts live;     // live warnings per kind (CountLiveWarnings)
  Counts at_exit;  // the exit report's SUMMARY, per kind; none: no report
  // How the leaked handles end: freed by the interpreter's shutdown (marked
  // so in the exit report), held by the program at exit, or closed by PHP
  // at the end of the request as PHP is designed to (released: a "released
  // after" note each, no exit report).
  enum End { kInterpreterShutdown, kHeldAtExit, kEndOfRequest } end =
      kInterpreterShutdown;
};

// The lines of a script marked "LEAK(kind)" at the end of a comment (kind: "pg.conn",
// or "conn" for whichever connection kind the run uses), per kind.
std::map<std::string, std::vector<int>> LeakMarkers(const std::string& path) {
  std::map<std::string, std::vector<int>> markers;
  std::istringstream in(ReadFile(path));
  static const std::regex kMarker(R"((#|//).*LEAK\(([a-z.]+)\)\s*$)");
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::smatch m;
    if (std::regex_search(line, m, kMarker)) markers[m[2]].push_back(number);
  }
  return markers;
}

// The sites the agent's log shows a stack for (a live warning's first
// mention of its site, a growing site, an exit report group): site id ->
// kind, and the line of the innermost frame in the file named `script`
// (0: none).
struct ShownSite {
  std::string kind;
  int line = 0;
};
std::map<int, ShownSite> SitesShown(const std::string& log,
                                    const std::string& script) {
  static const std::regex kHeads[] = {
      std::regex(R"(\]: (\S+) 0x[0-9a-f]+ .*acquired at \(site (\d+)\):$)"),
      std::regex(R"(\]: \d+ (\S+) still held at exit from site (\d+) .*acquired at:$)"),
      std::regex(R"(\]: growing (\S+) site (\d+):.*acquired at:$)")};
  static const std::regex kScriptFrame(
      R"(^    #\d+ in .* (\S+):(\d+) \[[a-z]+\]$)");
  std::map<int, ShownSite> sites;
  std::istringstream in(log);
  std::string line;
  ShownSite* current = nullptr;
  while (std::getline(in, line)) {
    std::smatch m;
    if (current != nullptr && line.rfind("    #", 0) == 0) {
      if (current->line == 0 && std::regex_search(line, m, kScriptFrame)) {
        const std::string file = m[1];
        if (file.size() >= script.size() + 1 &&
            file.compare(file.size() - script.size() - 1, std::string::npos,
                         "/" + script) == 0) {
          current->line = std::stoi(m[2]);
        }
      }
      continue;
    }
    current = nullptr;
    for (const std::regex& head : kHeads) {
      if (std::regex_search(line, m, head)) {
        ShownSite& site = sites[std::stoi(m[2])];
        site.kind = m[1];
        site.line = 0;
        current = &site;
        break;
      }
    }
  }
  return sites;
}

// Every line marked LEAK(kind) in the script is the innermost script frame
// of exactly one site of that kind the log shows, and every site of that
// kind is one of them: two leaking lines, two groups, each named.
void ExpectLeakLinesNamed(const std::string& script_path,
                          const std::string& log) {
  const std::string script =
      script_path.substr(script_path.find_last_of('/') + 1);
  const auto markers = LeakMarkers(script_path);
  ASSERT_FALSE(markers.empty()) << script_path << " marks no LEAK(kind) line";
  const std::map<int, ShownSite> sites = SitesShown(log, script);
  for (const auto& [kind, lines] : markers) {
    std::vector<int> shown;
    for (const auto& [id, site] : sites) {
      if (site.kind == kind || (site.kind.size() > kind.size() &&
                                site.kind.compare(site.kind.size() -
                                                      kind.size() - 1,
                                                  std::string::npos,
                                                  "." + kind) == 0)) {
        shown.push_back(site.line);
      }
    }
    std::vector<int> expected = lines;
    std::sort(expected.begin(), expected.end());
    std::sort(shown.begin(), shown.end());
    EXPECT_EQ(shown, expected)
        << kind << ": the lines of " << script
        << " the sites' stacks name (0: none) against the lines marked\n"
        << log;
  }
}

// The script among a command's arguments (a file of tests/clients/ with
// LEAK markers), or "".
std::string ScriptOf(const std::vector<std::string>& argv) {
  const std::string dir = std::string(LEAKWATCH_SOURCE_DIR) + "/tests/clients/";
  for (const std::string& arg : argv) {
    if (arg.rfind(dir, 0) == 0 && !LeakMarkers(arg).empty()) return arg;
  }
  return "";
}

// Leaky: the script's own output is what it prints without the agent; the
// agent's log (LEAKWATCH_LOG) has exactly the expected live warnings and
// exit report, and the exit status is LEAKWATCH_EXITCODE's.
void ExpectLeaks(const std::vector<std::string>& argv, const Leaks& leaks) {
  RunOptions native;
  native.preload = false;
  RunResult without = RunProgram(argv, native);
  ASSERT_EQ(without.exit_code, 0) << without.out << without.err;

  TempDir temp;
  std::string log = temp.path() + "/agent.log";
  RunOptions options = AgentOptions("1s");
  options.env["LEAKWATCH_LOG"] = log;
  RunResult with = RunProgram(argv, options);
  std::string text = ReadFile(log);
  const bool reported = leaks.end != Leaks::kEndOfRequest;
  EXPECT_EQ(with.exit_code, reported ? 9 : 0) << with.err << text;
  EXPECT_EQ(with.out, without.out) << with.err;
  EXPECT_EQ(with.err, without.err) << text;

  int live = 0;
  for (const auto& [kind, n] : leaks.live) {
    EXPECT_EQ(CountLiveWarnings(text, kind, "1 s"), n) << kind << "\n" << text;
    live += n;
  }
  // What the interpreter does on its way out is not the script's use.
  EXPECT_TRUE(LinesWith(text, "is in use again").empty()) << text;
  // The script's own lines that leaked, each its own site.
  const std::string script = ScriptOf(argv);
  if (!script.empty()) ExpectLeakLinesNamed(script, text);
  ExitReport report = ParseExitReport(text);
  if (!reported) {
    EXPECT_FALSE(report.present) << text;
    EXPECT_EQ(static_cast<int>(LinesWith(text, "was released after").size()),
              live)
        << text;
    return;
  }
  ASSERT_TRUE(report.present) << text;
  EXPECT_EQ(report.per_kind, leaks.at_exit) << text;
  int total = 0;
  for (const auto& [kind, n] : leaks.at_exit) total += n;
  EXPECT_EQ(report.total, total) << text;
  if (leaks.end == Leaks::kInterpreterShutdown) {
    EXPECT_FALSE(
        LinesWith(text, "released only at interpreter shutdown").empty())
        << text;
  }
}

// --- Python -----------------------------------------------------------------

TEST(Matrix, Psycopg2Leaky) {
  if (!RequirePostgres()) return;
  // psycopg2's cancel handles live with their (leaked) connections: listed
  // as reachable, not counted.
  ExpectLeaks(
      Python("psycopg2_leaky.py"),
      {{{"pg.conn", 2}, {"pg.result", 2}}, {{"pg.conn", 2}, {"pg.result", 2}}});
}

TEST(Matrix, Psycopg2Clean) {
  if (!RequirePostgres()) return;
  ExpectClean(Python("psycopg2_clean.py"));
}

TEST(Matrix, Psycopg3Leaky) {
  if (!RequirePostgres()) return;
  ExpectLeaks(Python("psycopg_leaky.py"), {{{"pg.conn", 2}, {"pg.result", 2}},
                                           {{"pg.conn", 2}, {"pg.result", 2}}});
}

TEST(Matrix, Psycopg3Clean) {
  if (!RequirePostgres()) return;
  ExpectClean(Python("psycopg_clean.py"));
}

TEST(Matrix, SqlalchemyPgLeaky) {
  if (!RequirePostgres()) return;
  ExpectLeaks(Python("sqlalchemy_leaky.py", "postgresql"),
              {{{"pg.conn", 2}}, {{"pg.conn", 2}}});
}

TEST(Matrix, SqlalchemyPgClean) {
  if (!RequirePostgres()) return;
  ExpectClean(Python("sqlalchemy_clean.py", "postgresql"));
}

TEST(Matrix, SqlalchemyMysqlLeaky) {
  if (!RequireMysql()) return;
  ExpectLeaks(Python("sqlalchemy_leaky.py", "mysql"),
              {{{"mysql.conn", 2}}, {{"mysql.conn", 2}}});
}

TEST(Matrix, SqlalchemyMysqlClean) {
  if (!RequireMysql()) return;
  ExpectClean(Python("sqlalchemy_clean.py", "mysql"));
}

TEST(Matrix, MysqldbLeaky) {
  if (!RequireMysql()) return;
  ExpectLeaks(Python("mysqldb_leaky.py"),
              {{{"mysql.conn", 2}}, {{"mysql.conn", 2}}});
}

TEST(Matrix, MysqldbClean) {
  if (!RequireMysql()) return;
  ExpectClean(Python("mysqldb_clean.py"));
}

// --- Perl DBI
// -----------------------------------------------------------------

TEST(Matrix, DbdPgLeaky) {
  if (!RequirePostgres()) return;
  ExpectLeaks(
      {"/usr/bin/perl", Script("dbd_leaky.pl"), "Pg"},
      {{{"pg.conn", 2}, {"pg.result", 2}}, {{"pg.conn", 2}, {"pg.result", 2}}});
}

TEST(Matrix, DbdPgClean) {
  if (!RequirePostgres()) return;
  ExpectClean({"/usr/bin/perl", Script("dbd_clean.pl"), "Pg"});
}

TEST(Matrix, DbdMariadbLeaky) {
  if (!RequireMysql()) return;
  ExpectLeaks({"/usr/bin/perl", Script("dbd_leaky.pl"), "MariaDB"},
              {{{"mysql.conn", 2}, {"mysql.result", 2}},
               {{"mysql.conn", 2}, {"mysql.result", 2}}});
}

TEST(Matrix, DbdMariadbClean) {
  if (!RequireMysql()) return;
  ExpectClean({"/usr/bin/perl", Script("dbd_clean.pl"), "MariaDB"});
}

// --- Ruby
// ---------------------------------------------------------------------

TEST(Matrix, RubyPgLeaky) {
  if (!RequirePostgres()) return;
  ExpectLeaks(
      {"/usr/bin/ruby", Script("ruby_pg_leaky.rb")},
      {{{"pg.conn", 2}, {"pg.result", 2}}, {{"pg.conn", 2}, {"pg.result", 2}}});
}

TEST(Matrix, RubyPgClean) {
  if (!RequirePostgres()) return;
  ExpectClean({"/usr/bin/ruby", Script("ruby_pg_clean.rb")});
}

TEST(Matrix, Mysql2Leaky) {
  if (!RequireMysql()) return;
  ExpectLeaks({"/usr/bin/ruby", Script("mysql2_leaky.rb")},
              {{{"mysql.conn", 2}, {"mysql.result", 2}},
               {{"mysql.conn", 2}, {"mysql.result", 2}}});
}

TEST(Matrix, Mysql2Clean) {
  if (!RequireMysql()) return;
  ExpectClean({"/usr/bin/ruby", Script("mysql2_clean.rb")});
}

// --- PHP
// ----------------------------------------------------------------------

// PHP closes a request's links and results at its end, as it is designed to
// (its scripts are not expected to close them): the leaks are the live
// warnings, each followed by its release at the end of the request.
TEST(Matrix, PhpPgsqlLeaky) {
  if (!RequirePostgres()) return;
  ExpectLeaks({"/usr/bin/php", Script("php_pgsql_leaky.php")},
              {{{"pg.conn", 2}, {"pg.result", 2}}, {}, Leaks::kEndOfRequest});
}

TEST(Matrix, PhpPgsqlClean) {
  if (!RequirePostgres()) return;
  ExpectClean({"/usr/bin/php", Script("php_pgsql_clean.php")});
}

TEST(Matrix, PhpPdoPgsqlLeaky) {
  if (!RequirePostgres()) return;
  // pdo_pgsql also prepares every statement server-side under a name:
  // those end with their connections.
  ExpectLeaks({"/usr/bin/php", Script("php_pdo_pgsql_leaky.php")},
              {{{"pg.conn", 2}, {"pg.result", 2}}, {}, Leaks::kEndOfRequest});
}

TEST(Matrix, PhpPdoPgsqlClean) {
  if (!RequirePostgres()) return;
  ExpectClean({"/usr/bin/php", Script("php_pdo_pgsql_clean.php")});
}

// --- C++: libpqxx
// ---------------------------------------------------------------

TEST(Matrix, LibpqxxLeaky) {
  if (!RequirePostgres()) return;
  ExpectLeaks({ProgramPath("pqxx_leaky")}, {{{"pg.conn", 2}, {"pg.result", 3}},
                                            {{"pg.conn", 2}, {"pg.result", 3}},
                                            Leaks::kHeldAtExit});
}

TEST(Matrix, LibpqxxClean) {
  if (!RequirePostgres()) return;
  ExpectClean({ProgramPath("pqxx_clean")});
}

// --- sysbench (clean only: see README.md, "Scripts")
// ----------------

TEST(Matrix, SysbenchPgsqlClean) {
  if (!RequirePostgres()) return;
  ExpectClean(Sysbench("pgsql"));
}

TEST(Matrix, SysbenchMysqlClean) {
  if (!RequireMysql()) return;
  ExpectClean(Sysbench("mysql"));
}

}  // namespace
}  // namespace leakwatch::testing
