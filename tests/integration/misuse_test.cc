// Misuse reports: written before the real call, with the stack of this call,
// of the earlier release and of the acquisition. The real call then does what
// it does (glibc aborts a double free): the program's bug, its behaviour.
#include <signal.h>

#include <string>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

RunResult Misuse(const std::string& mode) {
  return RunProgram({ProgramPath("misuse"), mode}, {});
}

// The frames printed after `header` (the report's section), up to the next
// "leakwatch[" line.
std::string SectionAfter(const std::string& text, const std::string& header) {
  size_t at = text.find(header);
  if (at == std::string::npos) return "";
  size_t end = text.find("leakwatch[", text.find('\n', at));
  return text.substr(at, end == std::string::npos ? std::string::npos
                                                  : end - at);
}

TEST(Misuse, DoubleClearIsReportedBeforeGlibcAborts) {
  if (!RequirePostgres()) return;
  RunResult r = Misuse("pg-double-clear");
  EXPECT_EQ(r.out, "before\n");
  EXPECT_EQ(r.term_signal, SIGABRT) << r.err;  // free(): double free
  std::vector<std::string> lines = LinesWith(r.err, "double release: PQclear");
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_NE(lines[0].find("on pg.result 0x"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("already released"), std::string::npos);
  EXPECT_NE(SectionAfter(r.err, "this call at:").find(" in main "),
            std::string::npos)
      << r.err;
  EXPECT_NE(SectionAfter(r.err, "first released at:").find(" in finish_report "),
            std::string::npos)
      << r.err;
  EXPECT_NE(SectionAfter(r.err, "acquired at (site").find(" in main "),
            std::string::npos)
      << r.err;
  // Written before the real call: it precedes glibc's own message.
  EXPECT_LT(r.err.find("double release"), r.err.find("double free"));
}

TEST(Misuse, DoubleFreeCancelIsReported) {
  if (!RequirePostgres()) return;
  RunResult r = Misuse("pg-double-cancel");
  EXPECT_EQ(r.out, "before\n");
  ASSERT_EQ(LinesWith(r.err, "double release: PQfreeCancel on pg.cancel")
                .size(),
            1u)
      << r.err;
  EXPECT_NE(SectionAfter(r.err, "first released at:").find(" in drop_cancel "),
            std::string::npos)
      << r.err;
}

TEST(Misuse, QueryOnAFinishedConnectionIsReported) {
  if (!RequirePostgres()) return;
  for (const char* mode : {"pg-use-after-finish", "pg-send-after-finish"}) {
    RunResult r = Misuse(mode);
    EXPECT_EQ(r.out.substr(0, 7), "before\n") << mode;
    std::string call = std::string(mode) == "pg-use-after-finish"
                           ? "use after close: PQexec on pg.conn"
                           : "use after close: PQsendQuery on pg.conn";
    ASSERT_EQ(LinesWith(r.err, call).size(), 1u) << mode << "\n" << r.err;
    EXPECT_NE(SectionAfter(r.err, "  closed at:").find(" in close_session "),
              std::string::npos)
        << r.err;
  }
}

TEST(Misuse, MysqlDoubleFreeAndQueryAfterCloseAreReported) {
  if (!RequireMysql()) return;
  RunResult twice = Misuse("my-double-free");
  EXPECT_EQ(twice.out, "before\n");
  ASSERT_EQ(LinesWith(twice.err,
                      "double release: mysql_free_result on mysql.result")
                .size(),
            1u)
      << twice.err;
  EXPECT_NE(SectionAfter(twice.err, "first released at:").find(" in free_rows "),
            std::string::npos)
      << twice.err;
  RunResult after = Misuse("my-query-after-close");
  ASSERT_EQ(LinesWith(after.err, "use after close: mysql_query on mysql.conn")
                .size(),
            1u)
      << after.err;
  EXPECT_NE(SectionAfter(after.err, "  closed at:").find(" in close_mysql "),
            std::string::npos)
      << after.err;
}

TEST(Misuse, ReleaseOfAnUnknownHandleIsCountedNotReported) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = {{"LEAKWATCH_STATS", "1"}};
  RunResult r = RunProgram({ProgramPath("misuse"), "unknown"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "before\nafter\n");
  EXPECT_TRUE(LinesWith(r.err, "double release").empty()) << r.err;
  EXPECT_EQ(LinesWith(r.err, "releases of unknown handles 1").size(), 1u)
      << r.err;
}

}  // namespace
}  // namespace leakwatch::testing
