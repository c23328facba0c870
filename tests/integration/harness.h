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

// The lines of `text` that contain `needle`.
std::vector<std::string> LinesWith(const std::string& text,
                                   const std::string& needle);

// Fails the current test (and returns false) unless a PostgreSQL server is
// configured through PGHOST/PGPORT and answers: in CI a missing server is a
// failure, never a skip.
bool RequirePostgres();

// One group of the exit report.
struct ExitGroup {
  int count = 0;
  std::string kind;
  int site = 0;
  int past_threshold = 0;
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

// Reads a whole file ("" if absent).
std::string ReadFile(const std::string& path);

// A fresh temporary directory, removed by the caller if it wishes.
std::string MakeTempDir();

}  // namespace leakwatch::testing

#endif  // LEAKWATCH_TESTS_INTEGRATION_HARNESS_H_
