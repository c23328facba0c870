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
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
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
  // (Every interpreter's row has its lines marked; libpqxx and sysbench
  // are native.)
  const std::string script = ScriptOf(argv);
  const std::string program = argv[0].substr(argv[0].find_last_of('/') + 1);
  if (program.rfind("python", 0) == 0 || program == "perl" ||
      program == "ruby" || program == "php") {
    ASSERT_FALSE(script.empty()) << "no LEAK(kind) line in the script";
  }
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


// --- Script frames beyond the matrix -----------------------------------------

// Handles per (kind, line of the innermost frame in `script`) in the exit
// report: its groups (whose stacks are shown) and its reachable section
// (one line per group, "acquired in f (file:line) < ...").
std::map<std::pair<std::string, int>, int> ExitCountsByLine(
    const std::string& log, const std::string& script) {
  std::map<std::pair<std::string, int>, int> counts;
  const std::map<int, ShownSite> sites = SitesShown(log, script);
  static const std::regex kGroup(
      R"(\]: (\d+) (\S+) still held at exit from site (\d+) )");
  static const std::regex kReachable(
      R"(\]:   (\d+) (\S+) from site \d+ \(oldest held [^)]*\), acquired in [^(]*\(([^:()]+):(\d+)\))");
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, kGroup)) {
      auto it = sites.find(std::stoi(m[3]));
      const int at = it == sites.end() ? 0 : it->second.line;
      counts[{m[2], at}] += std::stoi(m[1]);
    } else if (std::regex_search(line, m, kReachable)) {
      const std::string file = m[3];
      const bool ours = file.size() > script.size() &&
                        file.compare(file.size() - script.size() - 1,
                                     std::string::npos, "/" + script) == 0;
      counts[{m[2], ours ? std::stoi(m[4]) : 0}] += std::stoi(m[1]);
    }
  }
  return counts;
}

// 32 threads (psycopg2, without the GIL in libpq) and 8 asyncio tasks
// (psycopg 3) keep results and connections from six marked lines while
// they run for 4 s: the exit report has exactly as many per line as the
// script counted, nothing from other lines, and the script's output is its
// own.
TEST(ScriptStacks, PythonThreadsAndTasksCountedPerLine) {
  if (!RequirePostgres()) return;
  const std::string script = Script("python_threads_leaky.py");
  TempDir temp;
  const std::string log = temp.path() + "/agent.log";
  RunOptions options = AgentOptions("1s");
  options.env["LEAKWATCH_LOG"] = log;
  options.timeout_s = 90;
  RunResult run = RunProgram({"/usr/bin/python3", script, "4"}, options);
  const std::string text = ReadFile(log);
  // Lost or reachable (in a list the script never reads), as the heap
  // has it at exit: the counts below add both.
  ASSERT_TRUE(run.exit_code == 0 || run.exit_code == 9)
      << run.exit_code << run.err << text;
  EXPECT_EQ(run.err, "");
  std::map<std::pair<std::string, int>, int> kept;
  std::istringstream out(run.out);
  std::string word;
  int line = 0, count = 0;
  while (out >> word) {
    if (word == "kept" && out >> line >> count) {
      const auto markers = LeakMarkers(script);
      for (const auto& [kind, lines] : markers) {
        if (std::find(lines.begin(), lines.end(), line) != lines.end()) {
          kept[{kind, line}] = count;
        }
      }
    }
  }
  ASSERT_EQ(kept.size(), 6u) << run.out;
  std::map<std::pair<std::string, int>, int> reported;
  for (const auto& [key, n] : ExitCountsByLine(text, "python_threads_leaky.py")) {
    if (key.first == "pg.result" || key.first == "pg.conn") reported[key] = n;
  }
  EXPECT_EQ(reported, kept) << text;
}

// The same ctypes script on each CPython the machine has: 3.11 (Debian's),
// 3.12 and 3.13 (pyenv's builds) name the marked lines; 3.10, a version
// the agent does not read, keeps native stacks and says so in one line.
struct PythonBuild {
  std::string path;
  bool read;  // script frames expected
};

void ExpectCtypesScript(const PythonBuild& python) {
  if (!RequirePostgres()) return;
  ASSERT_EQ(access(python.path.c_str(), X_OK), 0)
      << python.path << " is missing: this machine's pyenv interpreters are "
      << "part of the test";
  const std::vector<std::string> argv = {python.path,
                                         Script("ctypes_libpq_leaky.py")};
  RunOptions native;
  native.preload = false;
  RunResult without = RunProgram(argv, native);
  ASSERT_EQ(without.exit_code, 0) << without.err;
  TempDir temp;
  const std::string log = temp.path() + "/agent.log";
  RunOptions options = AgentOptions("1s");
  options.env["LEAKWATCH_LOG"] = log;
  RunResult with = RunProgram(argv, options);
  const std::string text = ReadFile(log);
  // The handles are ctypes integers: lost, or reachable where a copy of
  // the address is left in memory; the counts add both.
  EXPECT_TRUE(with.exit_code == 0 || with.exit_code == 9)
      << with.exit_code << with.err << text;
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, without.err);
  std::map<std::pair<std::string, int>, int> expected;
  for (const auto& [kind, lines] :
       LeakMarkers(Script("ctypes_libpq_leaky.py"))) {
    for (int line : lines) expected[{kind, python.read ? line : 0}] += 1;
  }
  EXPECT_EQ(ExitCountsByLine(text, "ctypes_libpq_leaky.py"), expected)
      << text;
  const auto notes = LinesWith(text, "script frames are read for Python");
  if (python.read) {
    EXPECT_TRUE(notes.empty()) << text;
  } else {
    ASSERT_EQ(notes.size(), 1u) << text;
    EXPECT_NE(notes[0].find("Python 3.10."), std::string::npos) << notes[0];
    EXPECT_EQ(text.find("[python]"), std::string::npos) << text;
    EXPECT_NE(text.find("    #0 0x"), std::string::npos) << text;
  }
}

TEST(ScriptStacks, Python311) {
  ExpectCtypesScript({"/usr/bin/python3.11", true});
}
TEST(ScriptStacks, Python312) {
  ExpectCtypesScript({"/root/.pyenv/versions/3.12.1/bin/python3.12", true});
}
TEST(ScriptStacks, Python313) {
  ExpectCtypesScript({"/root/.pyenv/versions/3.13.0/bin/python3.13", true});
}
TEST(ScriptStacks, UnknownPythonVersionKeepsNativeStacksAndSaysSoOnce) {
  ExpectCtypesScript({"/root/.pyenv/versions/3.10.13/bin/python3.10", false});
}


// A suppression names a script's function (or file) as it names a native
// one: the nightly audit's leaks are counted, not shown; the other line's
// are reported.
TEST(ScriptStacks, SuppressionsMatchScriptFrames) {
  if (!RequirePostgres()) return;
  TempDir temp;
  const std::string log = temp.path() + "/agent.log";
  const std::string rules = temp.path() + "/suppressions";
  std::ofstream(rules) << "*:nightly_audit\n";
  RunOptions options = AgentOptions("1s");
  options.env["LEAKWATCH_LOG"] = log;
  options.env["LEAKWATCH_SUPPRESSIONS"] = rules;
  RunResult run = RunProgram(
      {"/usr/bin/python3", Script("ctypes_libpq_leaky.py")}, options);
  const std::string text = ReadFile(log);
  EXPECT_TRUE(run.exit_code == 0 || run.exit_code == 9) << run.err << text;
  std::map<std::pair<std::string, int>, int> expected;
  for (const auto& [kind, lines] :
       LeakMarkers(Script("ctypes_libpq_leaky.py"))) {
    expected[{kind, lines.front()}] = 1;  // audit's, not nightly_audit's
  }
  EXPECT_EQ(ExitCountsByLine(text, "ctypes_libpq_leaky.py"), expected)
      << text;
  EXPECT_EQ(LinesWith(text, "suppressions used (2 still held at exit").size(),
            1u)
      << text;
}

// JSON: a script frame is {"script":"python","function","file","line"},
// without a pc; each marked line is in the frames of its own leak.
TEST(ScriptStacks, JsonFramesNameTheScriptLines) {
  if (!RequirePostgres()) return;
  TempDir temp;
  const std::string log = temp.path() + "/agent.log";
  RunOptions options = AgentOptions("1s");
  options.env["LEAKWATCH_LOG"] = log;
  options.env["LEAKWATCH_FORMAT"] = "json";
  const std::string script = Script("psycopg2_leaky.py");
  RunResult run = RunProgram({"/usr/bin/python3", script}, options);
  const std::string text = ReadFile(log);
  EXPECT_EQ(run.exit_code, 9) << run.err << text;
  std::vector<std::string> leaks = LinesWith(text, "\"type\":\"leak\"");
  ASSERT_EQ(leaks.size(), 4u) << text;
  for (const auto& [kind, lines] : LeakMarkers(script)) {
    for (int line : lines) {
      const std::string frame = "{\"script\":\"python\",\"function\":\"";
      const std::string where =
          "\"file\":\"" + script + "\",\"line\":" + std::to_string(line) + "}";
      int found = 0;
      for (const std::string& leak : leaks) {
        if (leak.find("\"kind\":\"" + kind + "\"") != std::string::npos &&
            leak.find(where) != std::string::npos &&
            leak.find(frame) != std::string::npos) {
          ++found;
        }
      }
      EXPECT_EQ(found, 1) << kind << " at line " << line << "\n" << text;
    }
  }
}


// Ruby frames read by 8 threads calling libpq without the GVL (blocks, deep
// recursion, a fiber, rescued errors, reconnections) while another thread
// collects and compacts the heap, for 4 s: the clean script's output, exit
// status and silence are the same as without the agent.
TEST(ScriptStacks, RubyThreadsWhileTheHeapIsCompacted) {
  if (!RequirePostgres()) return;
  const std::vector<std::string> argv = {"/usr/bin/ruby",
                                         Script("ruby_pg_threads.rb")};
  RunOptions native;
  native.preload = false;
  native.env["RUBY_PG_THREADS_SECONDS"] = "4";
  RunResult without = RunProgram(argv, native);
  ASSERT_EQ(without.exit_code, 0) << without.err;
  RunOptions options = AgentOptions("200");
  options.env["RUBY_PG_THREADS_SECONDS"] = "4";
  RunResult with = RunProgram(argv, options);
  EXPECT_EQ(with.exit_code, 0) << with.err;
  EXPECT_EQ(with.out, without.out);
  EXPECT_EQ(with.err, without.err);
}

}  // namespace
}  // namespace leakwatch::testing
