#include "report/suppressions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "report/symbolizer.h"

namespace leakwatch {
namespace {

constexpr KindDesc kPgConn{"pg.conn", Family::kConn, 0};
constexpr KindDesc kMysqlResult{"mysql.result", Family::kResult, 4};
constexpr KindDesc kThread{"thread", Family::kThread, 6};

SymbolizedFrame Frame(const char* function, const char* file,
                      const char* module) {
  SymbolizedFrame f;
  f.function = function;
  f.file = file;
  f.module = module;
  return f;
}

TEST(SuppressionsTest, PatternsMatchAnywhereUnlessAnchored) {
  EXPECT_TRUE(Suppressions::PatternMatches("pool", "legacy_pool_open"));
  EXPECT_TRUE(Suppressions::PatternMatches("legacy_*_open", "legacy_pool_open"));
  EXPECT_TRUE(Suppressions::PatternMatches("^legacy", "legacy_pool_open"));
  EXPECT_FALSE(Suppressions::PatternMatches("^pool", "legacy_pool_open"));
  EXPECT_TRUE(Suppressions::PatternMatches("open$", "legacy_pool_open"));
  EXPECT_FALSE(Suppressions::PatternMatches("pool$", "legacy_pool_open"));
  EXPECT_TRUE(Suppressions::PatternMatches("^legacy_pool_open$",
                                           "legacy_pool_open"));
  EXPECT_FALSE(Suppressions::PatternMatches("^legacy_pool$",
                                            "legacy_pool_open"));
  EXPECT_TRUE(Suppressions::PatternMatches("*", "anything"));
  EXPECT_TRUE(Suppressions::PatternMatches("a*b*c", "xxaYYbZZcxx"));
  EXPECT_FALSE(Suppressions::PatternMatches("a*b*c", "xxaYYcZZbxx"));
}

TEST(SuppressionsTest, MalformedLinesAreRejectedWithAReason) {
  Suppressions s;
  std::string error;
  EXPECT_TRUE(s.AddLine("", "f:1", &error));
  EXPECT_TRUE(s.AddLine("   # a comment", "f:2", &error));
  EXPECT_TRUE(s.rules().empty());
  EXPECT_FALSE(s.AddLine("no colon here", "f:3", &error));
  EXPECT_NE(error.find("TYPE:PATTERN"), std::string::npos) << error;
  EXPECT_FALSE(s.AddLine("connection:foo", "f:4", &error));
  EXPECT_NE(error.find("unknown type \"connection\""), std::string::npos);
  EXPECT_FALSE(s.AddLine("conn:", "f:5", &error));
  EXPECT_NE(error.find("empty pattern"), std::string::npos);
  EXPECT_TRUE(s.AddLine("  conn : legacy_pool_*  ", "f:6", &error));
  ASSERT_EQ(s.rules().size(), 1u);
  EXPECT_EQ(s.rules()[0].type, "conn");
  EXPECT_EQ(s.rules()[0].pattern, "legacy_pool_*");
  EXPECT_EQ(s.rules()[0].where, "f:6");
}

TEST(SuppressionsTest, TypeSelectsFamilyKindOrEverything) {
  Suppressions s;
  std::string error;
  ASSERT_TRUE(s.AddLine("result:report_job", "f:1", &error));
  ASSERT_TRUE(s.AddLine("pg.conn:^open_pool$", "f:2", &error));
  ASSERT_TRUE(s.AddLine("*:libvendor.so", "f:3", &error));
  ASSERT_TRUE(s.AddLine("thread:watch_*", "f:4", &error));
  SymbolizedFrame job = Frame("report_job(int)", "/src/job.c", "/bin/svc");
  SymbolizedFrame pool = Frame("open_pool", "/src/pool.c", "/bin/svc");
  SymbolizedFrame vendor = Frame("", "", "/opt/lib/libvendor.so.2");
  SymbolizedFrame main_frame = Frame("main", "/src/main.c", "/bin/svc");
  std::vector<const SymbolizedFrame*> frames_job{&job, &main_frame};
  std::vector<const SymbolizedFrame*> frames_pool{&pool, &main_frame};
  std::vector<const SymbolizedFrame*> frames_vendor{&vendor, &main_frame};
  std::vector<const SymbolizedFrame*> frames_main{&main_frame};

  EXPECT_EQ(s.Match(kMysqlResult, frames_job, ""), 0);  // family result
  EXPECT_EQ(s.Match(kPgConn, frames_job, ""), -1);      // not a result
  EXPECT_EQ(s.Match(kPgConn, frames_pool, ""), 1);      // kind pg.conn
  EXPECT_EQ(s.Match(kMysqlResult, frames_pool, ""), -1);
  EXPECT_EQ(s.Match(kPgConn, frames_vendor, ""), 2);    // * and the module
  EXPECT_EQ(s.Match(kThread, frames_main, "watch_connection"), 3);
  EXPECT_EQ(s.Match(kThread, frames_main, "worker_main"), -1);
  EXPECT_EQ(s.Match(kThread, frames_main, ""), -1);
}

TEST(SuppressionsTest, LoadReportsBadLinesWithFileAndLineAndKeepsTheRest) {
  char path[] = "/tmp/leakwatch-supp-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = "# header\nconn:ok_one\nbad\nresult:ok_two\nwhat:x\n";
  ASSERT_EQ(write(fd, text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  close(fd);
  Suppressions s;
  std::vector<std::string> errors;
  EXPECT_TRUE(s.Load(path, &errors));
  unlink(path);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_NE(errors[0].find(std::string(path) + ":3"), std::string::npos)
      << errors[0];
  EXPECT_NE(errors[1].find(std::string(path) + ":5"), std::string::npos)
      << errors[1];
  ASSERT_EQ(s.rules().size(), 2u);
  EXPECT_EQ(s.rules()[1].pattern, "ok_two");

  Suppressions missing;
  errors.clear();
  EXPECT_FALSE(missing.Load("/nonexistent/leakwatch.supp", &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("LEAKWATCH_SUPPRESSIONS"), std::string::npos);
}

}  // namespace
}  // namespace leakwatch
