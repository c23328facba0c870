// Running a program under the agent and reading what it said.
//
// RunProgram spawns a program with an environment of its own (the test's
// environment plus overrides), captures stdout and stderr, and kills it if it
// outlives a deadline (a hang is a failure, never a wait forever).
#ifndef LEAKWATCH_TESTS_INTEGRATION_HARNESS_H_
#define LEAKWATCH_TESTS_INTEGRATION_HARNESS_H_

#include <map>
#include <string>
#include <vector>

namespace leakwatch::testing {

struct RunResult {
  int exit_code = -1;   // -1: did not exit normally
  int term_signal = 0;  // the signal that ended it, if any
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct RunOptions {
  bool preload = true;                        // LD_PRELOAD the agent
  std::map<std::string, std::string> env;     // overrides; "" value = unset
  int timeout_s = 60;
};

// Path of build/libleakwatch.so and of a test program in build/tests/programs.
std::string AgentPath();
std::string ProgramPath(const std::string& name);

RunResult RunProgram(const std::vector<std::string>& argv,
                     const RunOptions& options);

// The lines of `text`, without their '\n'.
std::vector<std::string> Lines(const std::string& text);

// The lines of `text` that contain `needle`.
std::vector<std::string> LinesWith(const std::string& text,
                                   const std::string& needle);

// Fails the current test (and returns false) unless a PostgreSQL server is
// configured through PGHOST/PGPORT and answers: in CI a missing server is a
// failure, never a skip.
bool RequirePostgres();

// The same for MariaDB: fails the current test (and returns false) unless a
// server is configured through MYSQL_TEST_PORT (scripts/mysql-sandbox) and
// answers a ping as MYSQL_TEST_USER.
bool RequireMysql();

// The MYSQL_TEST_* settings (scripts/mysql-sandbox), with the defaults the
// test programs use (tests/programs/my_common.h).
struct MysqlSettings {
  std::string host;      // MYSQL_TEST_HOST, default 127.0.0.1
  std::string port;      // MYSQL_TEST_PORT ("" if unset)
  std::string user;      // MYSQL_TEST_USER, default leakwatch
  std::string password;  // MYSQL_TEST_PASSWORD ("" if unset)
  std::string db;        // MYSQL_TEST_DB, default leakwatch
};
MysqlSettings Mysql();

// Per-kind totals from a LEAKWATCH_STATS=1 line
// ("stats: mysql.conn acquired 3 released 3, ..."); -1 where the kind is not
// in it.
struct KindTotals {
  long acquired = -1;
  long released = -1;
  long replaced = 0;
};
KindTotals ParseStats(const std::string& text, const std::string& kind);

// How many handles of `kind` got a live warning for passing a threshold
// shown as `threshold` ("500 ms"): each one's own line, plus the counts of
// the sites' "... and N more" lines.
int CountLiveWarnings(const std::string& text, const std::string& kind,
                      const std::string& threshold);

// One group of the exit report.
struct ExitGroup {
  int count = 0;
  std::string kind;
  int site = 0;
  int past_threshold = 0;
  std::string header;               // the group's first line, whole
  std::vector<std::string> frames;  // the "#N 0x... in ..." lines
  std::string example;              // the "example:" line
};
struct ExitReport {
  bool present = false;
  int total = 0;                    // from the SUMMARY line
  std::map<std::string, int> per_kind;
  std::vector<ExitGroup> groups;    // in report order
};
ExitReport ParseExitReport(const std::string& text);

// True if any frame of the group names `function`.
bool GroupHasFrame(const ExitGroup& group, const std::string& function);

// Runs `program` with LEAKWATCH_METRICS set to `metrics_pattern` (with %p)
// and the pid-expanded path as its first argument, `copy` as its second (the
// metrics programs copy the live file there before they exit).
RunResult RunWithMetrics(const std::string& program,
                         const std::string& metrics_pattern,
                         const std::string& copy, RunOptions options);

// The value of the sample `name{kind="KIND",...}` in a metrics text; -1 if
// absent.
long MetricsSample(const std::string& text, const std::string& name,
                   const std::string& kind);

// Reads a whole file ("" if absent).
std::string ReadFile(const std::string& path);

// A fresh temporary directory, removed with its contents when this goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace leakwatch::testing

#endif  // LEAKWATCH_TESTS_INTEGRATION_HARNESS_H_
