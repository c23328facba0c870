// Reachability and pools, under the agent against the real servers:
//   - pooled services (tests/programs/pool_service*.c, SQLAlchemy's
//     QueuePool) are never warned about, live or at exit, however long their
//     connections rest between bursts; what they leak (a connection per
//     burst, kept in a list and never used again) is warned live and
//     convicted at exit, and nothing else is;
//   - at exit, handles no pointer is left to are leaks marked "lost"
//     (tests/programs/reach_cases.cc, reach_busy.c); handles still
//     referenced that no rule convicts are listed apart as "still held at
//     exit, reachable" and do not count (LEAKWATCH_EXIT_REACHABLE says
//     otherwise).
//
// The agent's text this file reads, beyond the harness's exit report:
//   live:  "..., lost (no pointer to it is left)" in a lost handle's warning;
//          "growing KIND site S: N connections idle and never used again
//          (...), acquired at:" + stack, later "growing KIND site S: now N";
//   exit:  each group's verdict says "lost" / "indirectly lost" when its
//          members are; after the report, "still held at exit, reachable (not
//          counted as leaks): N handles in G groups" and one line per group:
//          "  N KIND from site S (oldest held X), acquired in FUNCTION (...)".
#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The lines, one per line: a failure message that lists what was wrong.
std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

// True if a frame line names `function` (a C function, or a C++ function or
// template whose demangled name contains it).
bool NamesFunction(const std::vector<std::string>& frames,
                   const std::string& function) {
  for (const std::string& f : frames) {
    size_t in = f.find(" in ");
    if (in != std::string::npos && f.find(function, in) != std::string::npos) {
      return true;
    }
  }
  return false;
}

bool IsExitSectionStart(const std::string& line) {
  return Contains(line, "]: exit report for ") ||
         Contains(line, "]: still held at exit, reachable");
}

// The stack printed for each site anywhere in the text: the "    #N" frame
// lines after a line that names "site S" and ends with ':' (a live
// warning's "acquired at (site S):", a growing site's first line, an exit
// report group).
std::map<int, std::vector<std::string>> SiteStacks(const std::string& text) {
  static const std::regex kSite(R"(site (\d+))");
  std::map<int, std::vector<std::string>> stacks;
  std::vector<std::string> lines = Lines(text);
  std::smatch m;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty() || lines[i].back() != ':' ||
        !std::regex_search(lines[i], m, kSite)) {
      continue;
    }
    std::vector<std::string>& frames = stacks[std::stoi(m[1])];
    if (!frames.empty()) continue;
    for (size_t j = i + 1; j < lines.size() && lines[j].rfind("    #", 0) == 0;
         ++j) {
      frames.push_back(lines[j]);
    }
  }
  return stacks;
}

// A live warning: any agent line before the exit report (and the reachable
// section) that is not a note about a handle reported earlier ("released
// after", "in use again") or the stats line.
struct LiveWarning {
  std::string line;
  int site = 0;  // 0: the line names no site
};

std::vector<LiveWarning> LiveWarnings(const std::string& text) {
  static const std::regex kSite(R"(site (\d+))");
  static const std::regex kNote(
      R"(reported above (was released after|is in use again after)|\.\.\. and \d+ more \S+ from site \d+ (released|in use again)$|release notes were dropped|\]: stats: )");
  std::vector<LiveWarning> warnings;
  std::smatch m;
  for (const std::string& line : Lines(text)) {
    if (IsExitSectionStart(line)) break;
    if (!Contains(line, "leakwatch[") || std::regex_search(line, kNote)) {
      continue;
    }
    LiveWarning w;
    w.line = line;
    if (std::regex_search(line, m, kSite)) w.site = std::stoi(m[1]);
    warnings.push_back(w);
  }
  return warnings;
}

// The section after the exit report that lists what is still reachable.
const std::regex& ReachableHeader() {
  static const std::regex re(
      R"(leakwatch\[\d+\]: still held at exit, reachable \(not counted as leaks\): (\d+) handles? in (\d+) groups? \(([^)]*)\)$)");
  return re;
}

const std::regex& ReachableGroupLine() {
  static const std::regex re(
      R"(leakwatch\[\d+\]:   (\d+) (\S+) from site (\d+) \(oldest held [^)]*\), acquired in (.+)$)");
  return re;
}

bool IsReachableSectionLine(const std::string& line) {
  return std::regex_search(line, ReachableHeader()) ||
         std::regex_search(line, ReachableGroupLine());
}

struct ReachableGroup {
  int count = 0;
  std::string kind;
  int site = 0;
  std::string acquired_in;  // "FUNCTION (FILE:LINE)", as printed
  std::string line;
};
struct ReachableSection {
  bool present = false;
  int total = 0;            // from the section's first line
  int declared_groups = 0;  // likewise
  std::vector<ReachableGroup> groups;
  std::map<std::string, int> per_kind;  // summed over the groups
};

ReachableSection ParseReachable(const std::string& text) {
  ReachableSection section;
  std::vector<std::string> lines = Lines(text);
  std::smatch m;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!std::regex_search(lines[i], m, ReachableHeader())) continue;
    if (section.present) {
      ADD_FAILURE() << "two reachable sections:\n" << text;
      break;
    }
    section.present = true;
    section.total = std::stoi(m[1]);
    section.declared_groups = std::stoi(m[2]);
    for (size_t j = i + 1; j < lines.size() &&
                           std::regex_search(lines[j], m, ReachableGroupLine());
         ++j) {
      ReachableGroup g;
      g.count = std::stoi(m[1]);
      g.kind = m[2];
      g.site = std::stoi(m[3]);
      g.acquired_in = m[4];
      g.line = lines[j];
      section.per_kind[g.kind] += g.count;
      section.groups.push_back(g);
    }
  }
  return section;
}

// The reachable section holds exactly `count` handles of `kind`, in one
// group acquired in `function`.
void ExpectOneReachableGroup(const std::string& err, int count,
                             const std::string& kind,
                             const std::string& function) {
  ReachableSection reachable = ParseReachable(err);
  ASSERT_TRUE(reachable.present) << err;
  EXPECT_EQ(reachable.total, count) << err;
  EXPECT_EQ(reachable.declared_groups, 1) << err;
  ASSERT_EQ(reachable.groups.size(), 1u) << err;
  EXPECT_EQ(reachable.groups[0].count, count) << err;
  EXPECT_EQ(reachable.groups[0].kind, kind) << err;
  EXPECT_TRUE(Contains(reachable.groups[0].acquired_in, function))
      << reachable.groups[0].line;
}

// No live warning and no exit report: of the agent's words, at most the
// reachable section.
void ExpectNoLiveWarningAndNoExitReport(const std::string& err) {
  EXPECT_TRUE(LiveWarnings(err).empty()) << err;
  std::vector<std::string> stray;
  for (const char* word : {" idle ", " held ", "growing", "lost"}) {
    for (const std::string& line : LinesWith(err, word)) {
      if (!IsReachableSectionLine(line)) stray.push_back(line);
    }
  }
  EXPECT_TRUE(stray.empty()) << Join(stray);
  EXPECT_TRUE(LinesWith(err, "exit report for").empty()) << err;
  EXPECT_FALSE(ParseExitReport(err).present) << err;
}

// True if the group's verdict marks its members lost (not "indirectly
// lost").
bool MarkedLost(const ExitGroup& g) {
  return Contains(g.header, "lost") && !Contains(g.header, "indirectly lost");
}

std::string Bursts(int n) {
  std::string out;
  for (int i = 1; i <= n; ++i) out += "burst " + std::to_string(i) + "\n";
  return out + "done\n";
}

// --- pooled services in C (pool_service, pool_service_my) --------------------

struct Service {
  const char* name;     // for the test's name
  const char* program;  // in build/tests/programs
  const char* kind;     // of its connections
  bool (*require)();    // the server it needs
};

void PrintTo(const Service& s, std::ostream* os) { *os << s.program; }

const Service kPgService = {"pg", "pool_service", "pg.conn", RequirePostgres};
const Service kMyService = {"mysql", "pool_service_my", "mysql.conn",
                            RequireMysql};

class PoolService : public ::testing::TestWithParam<Service> {
 protected:
  RunResult Run(const std::string& bursts, const std::string& gap_ms,
                const std::string& leak, const std::string& at_exit,
                std::map<std::string, std::string> env) {
    RunOptions options;
    options.env = std::move(env);
    // The default, whatever the harness asks for.
    options.env.emplace("LEAKWATCH_EXIT_REACHABLE", "report");
    options.env["LEAKWATCH_EXITCODE"] = "9";
    return RunProgram(
        {ProgramPath(GetParam().program), "6", bursts, gap_ms, leak, at_exit},
        options);
  }
};

// 5 bursts, 2.5 s apart (10 s of gaps), threshold 1 s: every gap leaves all
// 6 pool connections idle 2.5 s, and each is used again in the next burst
// (the free list is FIFO). A pool: nothing to say, live or at exit.
TEST_P(PoolService, ClosedAtExitIsSilentThroughIdleGaps) {
  if (!GetParam().require()) return;
  RunResult r =
      Run("5", "2500", "0", "close", {{"LEAKWATCH_THRESHOLD_MS", "1000"}});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Bursts(5));
  ExpectNoLiveWarningAndNoExitReport(r.err);
  EXPECT_TRUE(LinesWith(r.err, "leakwatch[").empty()) << r.err;
}

// The pool still referenced from globals when main returns: not a leak, so
// no exit report and the program's own status; listed as reachable. Gaps of
// twice the threshold.
TEST_P(PoolService, KeptAtExitIsListedAsReachableAndDoesNotCount) {
  if (!GetParam().require()) return;
  RunResult r =
      Run("3", "1000", "0", "keep", {{"LEAKWATCH_THRESHOLD_MS", "500"}});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Bursts(3));
  ExpectNoLiveWarningAndNoExitReport(r.err);
  ExpectOneReachableGroup(r.err, 6, GetParam().kind, "open_pool");
}

// LEAKWATCH_EXIT_REACHABLE=count: the reachable pool is in the exit report
// and counts for LEAKWATCH_EXITCODE.
TEST_P(PoolService, KeptAtExitCountsWithExitReachableCount) {
  if (!GetParam().require()) return;
  RunResult r = Run("3", "1000", "0", "keep",
                    {{"LEAKWATCH_THRESHOLD_MS", "500"},
                     {"LEAKWATCH_EXIT_REACHABLE", "count"}});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_EQ(r.out, Bursts(3));
  EXPECT_TRUE(LiveWarnings(r.err).empty()) << r.err;
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  EXPECT_EQ(report.total, 6) << r.err;
  EXPECT_EQ(report.per_kind, (std::map<std::string, int>{{GetParam().kind, 6}}))
      << r.err;
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "open_pool")) << r.err;
  EXPECT_FALSE(Contains(report.groups[0].header, "lost"))
      << report.groups[0].header;
  EXPECT_FALSE(ParseReachable(r.err).present) << r.err;
}

// LEAKWATCH_EXIT_REACHABLE=off: the reachable pool is not shown at all.
TEST_P(PoolService, KeptAtExitIsNotShownWithExitReachableOff) {
  if (!GetParam().require()) return;
  RunResult r = Run(
      "3", "1000", "0", "keep",
      {{"LEAKWATCH_THRESHOLD_MS", "500"}, {"LEAKWATCH_EXIT_REACHABLE", "off"}});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Bursts(3));
  EXPECT_TRUE(LinesWith(r.err, "leakwatch[").empty()) << r.err;
}

// export_handler leaks one connection per burst into a global list (still
// reachable) and never uses it again: a growing site. 5 bursts 1 s apart,
// threshold 500 ms. Every live warning is about that site — never the
// pool's, idle 1 s between bursts —; at exit its 5 connections are convicted
// (not "lost": the list still points to them) and the pool's 6 are listed as
// reachable.
TEST_P(PoolService, LeakedExportConnectionsAreWarnedAndConvictedPoolIsNot) {
  if (!GetParam().require()) return;
  const std::string kind = GetParam().kind;
  RunResult r =
      Run("5", "1000", "1", "keep", {{"LEAKWATCH_THRESHOLD_MS", "500"}});
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_EQ(r.out, Bursts(5));

  // Every live warning is about a site whose stack goes through
  // export_handler, not open_pool; at least one shows that stack.
  std::map<int, std::vector<std::string>> stacks = SiteStacks(r.err);
  std::vector<LiveWarning> warnings = LiveWarnings(r.err);
  ASSERT_FALSE(warnings.empty()) << r.err;
  std::vector<std::string> wrong;
  bool stack_shown_live = false;
  for (const LiveWarning& w : warnings) {
    const std::vector<std::string>& frames = stacks[w.site];
    if (!Contains(w.line, kind) || !NamesFunction(frames, "export_handler") ||
        NamesFunction(frames, "open_pool")) {
      wrong.push_back(w.line);
    }
    if (w.line.back() == ':') stack_shown_live = true;
  }
  EXPECT_TRUE(wrong.empty()) << "not about export_handler's site:\n"
                             << Join(wrong) << "\nin:\n"
                             << r.err;
  EXPECT_TRUE(stack_shown_live) << r.err;
  // open_pool is named only by the reachable section's line.
  std::vector<std::string> pool_lines = LinesWith(r.err, "open_pool");
  ASSERT_EQ(pool_lines.size(), 1u) << Join(pool_lines);
  EXPECT_TRUE(IsReachableSectionLine(pool_lines[0])) << pool_lines[0];

  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  int exported = 0;
  for (const ExitGroup& g : report.groups) {
    EXPECT_EQ(g.kind, kind) << g.header;
    EXPECT_TRUE(GroupHasFrame(g, "export_handler")) << g.header;
    EXPECT_FALSE(GroupHasFrame(g, "open_pool")) << g.header;
    EXPECT_FALSE(Contains(g.header, "lost")) << g.header;
    exported += g.count;
  }
  EXPECT_EQ(exported, 5) << r.err;
  EXPECT_EQ(report.total, 5) << r.err;
  EXPECT_EQ(report.per_kind, (std::map<std::string, int>{{kind, 5}})) << r.err;
  ExpectOneReachableGroup(r.err, 6, kind, "open_pool");
}

INSTANTIATE_TEST_SUITE_P(Clients, PoolService,
                         ::testing::Values(kPgService, kMyService),
                         [](const ::testing::TestParamInfo<Service>& info) {
                           return std::string(info.param.name);
                         });

// --- lost and reachable (reach_cases, reach_busy)
// ------------------------------

// reach_cases keeps two threads blocked at exit (never joined): threads are
// not what these tests are about, so only libpq is tracked.
const std::map<std::string, std::string> kPgOnly = {
    {"LEAKWATCH_TRACK", "pg"}, {"LEAKWATCH_EXITCODE", "9"}};

// The 3 lost handles are convicted, each in its own group marked lost; the
// 6 kept ones are reachable, each group acquired in its keep_* function.
void ExpectLostAndReachableCases(const RunResult& r, const std::string& kind) {
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_EQ(r.out, "expect lost 3 reachable 6\n");

  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  EXPECT_EQ(report.total, 3) << r.err;
  EXPECT_EQ(report.per_kind, (std::map<std::string, int>{{kind, 3}})) << r.err;
  ASSERT_EQ(report.groups.size(), 3u) << r.err;
  std::set<std::string> lost_cases;
  for (const ExitGroup& g : report.groups) {
    EXPECT_EQ(g.kind, kind) << g.header;
    EXPECT_EQ(g.count, 1) << g.header;
    EXPECT_TRUE(MarkedLost(g)) << g.header;
    EXPECT_FALSE(NamesFunction(g.frames, "keep_")) << g.header;
    for (const char* c :
         {"lost_overwritten", "lost_error_path", "lost_freed_struct"}) {
      if (NamesFunction(g.frames, c)) lost_cases.insert(c);
    }
  }
  EXPECT_EQ(lost_cases.size(), 3u) << r.err;

  ReachableSection reachable = ParseReachable(r.err);
  ASSERT_TRUE(reachable.present) << r.err;
  EXPECT_EQ(reachable.total, 6) << r.err;
  EXPECT_EQ(reachable.per_kind, (std::map<std::string, int>{{kind, 6}}))
      << r.err;
  EXPECT_EQ(reachable.declared_groups,
            static_cast<int>(reachable.groups.size()))
      << r.err;
  std::map<std::string, int> kept;
  for (const ReachableGroup& g : reachable.groups) {
    bool named = false;
    for (const char* c :
         {"keep_global", "keep_heap_struct", "keep_other_thread_stack",
          "keep_tls", "keep_cpp_container"}) {
      if (Contains(g.acquired_in, c)) {
        kept[c] += g.count;
        named = true;
      }
    }
    EXPECT_TRUE(named) << g.line;
  }
  EXPECT_EQ(kept, (std::map<std::string, int>{{"keep_global", 1},
                                              {"keep_heap_struct", 1},
                                              {"keep_other_thread_stack", 1},
                                              {"keep_tls", 1},
                                              {"keep_cpp_container", 2}}))
      << r.err;
}

TEST(Reachability, LostConnectionsAreConvictedKeptOnesAreReachable) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = kPgOnly;
  // The default, whatever the harness asks for.
  options.env.emplace("LEAKWATCH_EXIT_REACHABLE", "report");
  RunResult r = RunProgram({ProgramPath("reach_cases")}, options);
  ExpectLostAndReachableCases(r, "pg.conn");
}

TEST(Reachability, LostResultsAreConvictedKeptOnesAreReachable) {
  if (!RequirePostgres()) return;
  RunOptions options;
  options.env = kPgOnly;
  // The default, whatever the harness asks for.
  options.env.emplace("LEAKWATCH_EXIT_REACHABLE", "report");
  RunResult r = RunProgram({ProgramPath("reach_cases"), "results"}, options);
  ExpectLostAndReachableCases(r, "pg.result");
}

// 16 threads acquire and release results and MySQL handles as fast as they
// can for 3 s while the watchdog scans (threshold 200 ms): no crash, no
// hang, and the verdicts at exit are exact — the 5 dropped results lost,
// the 7 in the global array reachable.
TEST(Reachability, ScansWhileSixteenThreadsChurnHandlesAreExact) {
  RunOptions options;
  options.env = {{"LEAKWATCH_THRESHOLD_MS", "200"},
                 {"LEAKWATCH_EXITCODE", "9"}};
  // The default, whatever the harness asks for.
  options.env.emplace("LEAKWATCH_EXIT_REACHABLE", "report");
  options.timeout_s = 60;
  RunResult r =
      RunProgram({ProgramPath("reach_busy"), "16", "3", "5", "7"}, options);
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.term_signal, 0) << r.err;
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_TRUE(std::regex_match(
      r.out, std::regex(R"(lost 5 kept 7, 16 threads did [1-9]\d* cycles\n)")))
      << r.out;

  // Both sets are past the threshold at exit: the kept ones are convicted by
  // the held-too-long rule (and were warned live), the dropped ones too and
  // marked lost. Nothing is left for the reachable section.
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  EXPECT_EQ(report.total, 12) << r.err;
  EXPECT_EQ(report.per_kind, (std::map<std::string, int>{{"pg.result", 12}}))
      << r.err;
  ASSERT_EQ(report.groups.size(), 2u) << r.err;
  int lost_groups = 0;
  for (const ExitGroup& g : report.groups) {
    if (MarkedLost(g)) {
      ++lost_groups;
      EXPECT_EQ(g.count, 5) << g.header;
      EXPECT_TRUE(GroupHasFrame(g, "leak_results")) << g.header;
    } else {
      EXPECT_EQ(g.count, 7) << g.header;
      EXPECT_FALSE(Contains(g.header, "lost")) << g.header;
      EXPECT_TRUE(GroupHasFrame(g, "keep_results")) << g.header;
    }
  }
  EXPECT_EQ(lost_groups, 1) << r.err;
  EXPECT_FALSE(ParseReachable(r.err).present) << r.err;
}

// --- SQLAlchemy's QueuePool (sqlalchemy_pool.py)
// -------------------------------

struct PythonDriver {
  const char* name;  // sqlalchemy_pool.py's DRIVER
  const char* kind;  // of its connections
  bool (*require)();
};

void PrintTo(const PythonDriver& d, std::ostream* os) { *os << d.name; }

class SqlalchemyPool : public ::testing::TestWithParam<PythonDriver> {
 protected:
  RunResult Run(const std::string& bursts, const std::string& gap_ms,
                const std::string& leak, const std::string& threshold_ms) {
    RunOptions options;
    options.env = {{"LEAKWATCH_THRESHOLD_MS", threshold_ms},
                   {"LEAKWATCH_EXITCODE", "9"}};
    // The default, whatever the harness asks for.
    options.env.emplace("LEAKWATCH_EXIT_REACHABLE", "report");
    return RunProgram({"/usr/bin/python3",
                       std::string(LEAKWATCH_SOURCE_DIR) +
                           "/tests/integration/sqlalchemy_pool.py",
                       GetParam().name, bursts, gap_ms, leak},
                      options);
  }
};

// 4 bursts 2.5 s apart, threshold 1 s, the engine disposed at the end: the
// QueuePool's 4 connections rest 2.5 s at a time and are used again.
TEST_P(SqlalchemyPool, PooledEngineIsSilent) {
  if (!GetParam().require()) return;
  RunResult r = Run("4", "2500", "0", "1000");
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Bursts(4));
  ExpectNoLiveWarningAndNoExitReport(r.err);
  EXPECT_TRUE(LinesWith(r.err, "leakwatch[").empty()) << r.err;
}

// A raw connection checked out of a second engine once per burst and kept
// in a module-level list: each is a new connection, never used again. 5
// bursts 1 s apart, threshold 500 ms. The native stacks are the
// interpreter's, so this looks at kinds and counts: the live warnings are
// all about sites the exit report convicts, and it convicts exactly the 5
// (with, for libpq, psycopg2's cancel handle of each, judged with its
// connection) — not the pool's. The interpreter closes them as it shuts
// down; that is no release: they are in the exit report, marked so, and the
// pool's resting connections are listed apart as reachable.
TEST_P(SqlalchemyPool, LeakedRawConnectionsAreWarnedLivePoolIsNot) {
  if (!GetParam().require()) return;
  const std::string kind = GetParam().kind;
  RunResult r = Run("5", "1000", "1", "500");
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_EQ(r.out, Bursts(5));
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  EXPECT_EQ(report.total, 5) << r.err;
  EXPECT_EQ(report.per_kind[kind], 5) << r.err;
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(report.groups[0].header,
                       "released only at interpreter shutdown"))
      << r.err;
  // The pool's 4 connections, still referenced by the engine.
  std::vector<std::string> reachable =
      LinesWith(r.err, "still held at exit, reachable");
  ASSERT_EQ(reachable.size(), 1u) << r.err;
  EXPECT_TRUE(Contains(reachable[0], "4 " + kind)) << reachable[0];

  std::vector<LiveWarning> warnings = LiveWarnings(r.err);
  ASSERT_FALSE(warnings.empty()) << r.err;
  std::set<int> sites;
  for (const LiveWarning& w : warnings) {
    EXPECT_TRUE(Contains(w.line, kind)) << w.line;
    sites.insert(w.site);
  }
  EXPECT_EQ(sites.size(), 1u) << r.err;
  const std::regex kGrowing("growing " + kind +
                                   R"( site \d+: (now )?\d+ connections idle)");
  bool growing = false;
  for (const LiveWarning& w : warnings) {
    growing |= std::regex_search(w.line, kGrowing);
  }
  EXPECT_TRUE(growing) << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Drivers, SqlalchemyPool,
    ::testing::Values(PythonDriver{"psycopg2", "pg.conn", RequirePostgres},
                      PythonDriver{"mysqldb", "mysql.conn", RequireMysql}),
    [](const ::testing::TestParamInfo<PythonDriver>& info) {
      return std::string(info.param.name);
    });

}  // namespace
}  // namespace leakwatch::testing
