// LEAKWATCH_SUPPRESSIONS against real programs: suppressed reports are
// counted, not shown; a bad line is one clear error; the rest still applies.
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

std::string WriteFile(const TempDir& dir, const std::string& text) {
  std::string path = dir.path() + "/leakwatch.supp";
  std::ofstream(path) << text;
  return path;
}

TEST(Suppressions, ResultsFromASuppressedFunctionAreCountedNotShown) {
  if (!RequirePostgres()) return;
  TempDir dir;
  std::string path = WriteFile(dir,
                               "# the batch job is being rewritten\n"
                               "result:count_rows_in_*\n"
                               "conn:nothing_matches_this\n");
  RunOptions options;
  options.env = {{"LEAKWATCH_SUPPRESSIONS", path},
                 {"LEAKWATCH_RESULT_THRESHOLD_MS", "0"}};
  RunResult r = RunProgram({ProgramPath("pg_result_loop_leak"), "12"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
  EXPECT_TRUE(LinesWith(r.err, "count_rows_in_batch").empty()) << r.err;
  std::vector<std::string> used = LinesWith(r.err, "suppressions used");
  ASSERT_EQ(used.size(), 1u) << r.err;
  EXPECT_NE(used[0].find("(12 still held at exit, not shown)"),
            std::string::npos)
      << used[0];
  std::vector<std::string> rule =
      LinesWith(r.err, "12 result:count_rows_in_* (" + path + ":2)");
  EXPECT_EQ(rule.size(), 1u) << r.err;
  EXPECT_TRUE(LinesWith(r.err, "nothing_matches_this").empty()) << r.err;
}

TEST(Suppressions, ThreadSiteSuppressedByStartRoutineLiveAndAtExit) {
  if (!RequirePostgres()) return;
  TempDir dir;
  std::string path = WriteFile(dir,
                               "thread:watch_connection\n"
                               "this line is wrong\n");
  RunOptions options;
  options.env = {{"LEAKWATCH_SUPPRESSIONS", path},
                 {"LEAKWATCH_THRESHOLD_MS", "300ms"}};
  RunResult r =
      RunProgram({ProgramPath("thr_watchers"), "8", "100", "600"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> errors = LinesWith(r.err, path + ":2");
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find("expected TYPE:PATTERN"), std::string::npos);
  EXPECT_TRUE(LinesWith(r.err, "growing thread site").empty()) << r.err;
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
  EXPECT_EQ(LinesWith(r.err, "8 thread:watch_connection (" + path + ":1)")
                .size(),
            1u)
      << r.err;
}

TEST(Suppressions, WithoutTheFileTheSameProgramIsReported) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "300ms"}};
  RunResult r =
      RunProgram({ProgramPath("thr_watchers"), "8", "100", "600"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(LinesWith(r.err, "growing thread site").empty()) << r.err;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].count, 8);
}

}  // namespace
}  // namespace leakwatch::testing
