// The per-thread stack cache (Tracker::CaptureStackIdAt) against one call site
// reached along different paths (tests/programs/stack_sites.c): each path must
// be its own group with its own count, through the cache (depth 24) exactly as
// with plain unwinding (depth 40, deeper than the cache holds). A cache that
// trusted the call site without checking the return addresses merges them.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

constexpr int kRounds = 7;

// Group sizes keyed by the innermost frame that tells the paths apart.
std::map<std::string, int> GroupsByPath(const ExitReport& report) {
  std::map<std::string, int> out;
  for (const ExitGroup& g : report.groups) {
    std::string path = "?";
    if (GroupHasFrame(g, "via_left")) path = "left";
    if (GroupHasFrame(g, "via_right")) path = "right";
    if (GroupHasFrame(g, "via_thread")) path = "thread";
    if (GroupHasFrame(g, "via_depth")) {
      int depth = 0;
      for (const std::string& f : g.frames) {
        if (f.find(" in via_depth ") != std::string::npos) ++depth;
      }
      path = "depth" + std::to_string(depth);
    }
    out[path] += g.count;
  }
  return out;
}

std::map<std::string, int> RunWithDepth(const std::string& depth) {
  RunOptions options;
  options.env = {{"LEAKWATCH_STACK_DEPTH", depth}};
  RunResult r = RunProgram({ProgramPath("stack_sites"),
                            std::to_string(kRounds)},
                           options);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "done\n");
  ExitReport report = ParseExitReport(r.err);
  EXPECT_EQ(report.total, 5 * kRounds) << r.err;
  EXPECT_EQ(report.groups.size(), 5u) << r.err;
  return GroupsByPath(report);
}

TEST(StackCache, OneCallSiteAlongFivePathsIsFiveGroups) {
  std::map<std::string, int> expected = {{"left", kRounds},
                                         {"right", kRounds},
                                         {"depth1", kRounds},
                                         {"depth3", kRounds},
                                         {"thread", kRounds}};
  EXPECT_EQ(RunWithDepth("24"), expected);   // through the cache
  EXPECT_EQ(RunWithDepth("40"), expected);   // deeper than it holds: plain unwinding
}

}  // namespace
}  // namespace leakwatch::testing
