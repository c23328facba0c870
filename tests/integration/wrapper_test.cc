// The `leakwatch` command (scripts/leakwatch), `cmake --install`, and the
// annotations header (include/leakwatch.h) used by programs run with and
// without the agent.
//
// The wrapper is run by path with the harness's RunProgram and preload off:
// whatever LD_PRELOAD the program sees is the wrapper's doing.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/harness.h"

namespace leakwatch::testing {
namespace {

namespace fs = std::filesystem;

// The agent as the wrapper names it (symlinks resolved).
std::string Agent() { return fs::canonical(AgentPath()).string(); }

// Options for a run without the harness's LD_PRELOAD.
RunOptions NoPreload(int timeout_s = 60) {
  RunOptions options;
  options.preload = false;
  options.timeout_s = timeout_s;
  return options;
}

std::string WrapperPath() {
  return std::string(LEAKWATCH_SOURCE_DIR) + "/scripts/leakwatch";
}

// Runs the source tree's wrapper with --library pointing at this build's
// agent (so the tests do not depend on where the build directory is; the
// wrapper's own lookup is tested below with copies), then `args`.
RunResult RunWrapper(const std::vector<std::string>& args,
                     RunOptions options = {}) {
  options.preload = false;
  std::vector<std::string> argv = {WrapperPath(), "--library", AgentPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, options);
}

// The value of `name` in `env` output ("NAME=value" lines); "<unset>" if
// absent.
std::string EnvValue(const std::string& env_output, const std::string& name) {
  for (const std::string& line : Lines(env_output)) {
    if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
  }
  return "<unset>";
}

// Prints each argument on its own line.
const std::vector<std::string> kPrintArgs = {"/bin/sh", "-c",
                                             "printf '%s\\n' \"$@\"", "sh"};

TEST(Wrapper, PassesArgumentsIntact) {
  std::vector<std::string> args = {"two words", "it's",   "\"double\"",
                                   "",          "  pad ", "*",
                                   "$HOME",     "a\\b",   "--json"};
  std::vector<std::string> argv = {"--"};
  argv.insert(argv.end(), kPrintArgs.begin(), kPrintArgs.end());
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = RunWrapper(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  for (const std::string& a : args) expected += a + "\n";
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(r.err, "");
}

TEST(Wrapper, OptionsEndAtTheProgram) {
  // Without "--": the first non-option is the program; what follows, even
  // if it looks like the wrapper's options, is the program's.
  RunResult r = RunWrapper({"/bin/sh", "-c",
                            "printf '%s\\n' \"$@\"; printf 'format=%s\\n' "
                            "\"${LEAKWATCH_FORMAT-unset}\"",
                            "sh", "--json", "--threshold", "1s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "--json\n--threshold\n1s\nformat=unset\n");
}

TEST(Wrapper, PassesExitStatusThrough) {
  for (int status : {0, 1, 3, 255}) {
    RunResult r =
        RunWrapper({"/bin/sh", "-c", "exit " + std::to_string(status)});
    EXPECT_EQ(r.exit_code, status) << r.err;
    EXPECT_EQ(r.term_signal, 0);
  }
  // The program is exec'd: a signal death is seen as such by the caller
  // (not as a shell's 128+N exit status).
  for (int sig : {SIGTERM, SIGKILL}) {
    RunResult r =
        RunWrapper({"/bin/sh", "-c", "kill -" + std::to_string(sig) + " $$"});
    EXPECT_EQ(r.exit_code, -1) << r.err;
    EXPECT_EQ(r.term_signal, sig) << r.err;
  }
}

TEST(Wrapper, LogIsNamedAfterTheProgramsPid) {
  // --log FILE without %p: the program (`$$` of the shell) writes FILE.<pid>.
  TempDir temp;
  std::string log = temp.path() + "/agent.log";
  // (dash leaves with _exit, which skips the agent's exit report: exec a
  // program that exits normally, in the same process.)
  RunResult r = RunWrapper(
      {"--stats", "--log", log, "/bin/sh", "-c", "echo $$; exec /bin/true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string pid = r.out.substr(0, r.out.find('\n'));
  ASSERT_FALSE(pid.empty());
  std::string text = ReadFile(log + "." + pid);
  EXPECT_NE(text.find("leakwatch[" + pid + "]: stats:"), std::string::npos)
      << "log " << log << "." << pid << ": " << text;
}

TEST(Wrapper, PrependsToAnExistingLdPreload) {
  RunOptions options;
  options.env["LD_PRELOAD"] = "libm.so.6";
  RunResult r = RunWrapper({"/bin/sh", "-c", "printenv LD_PRELOAD"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, Agent() + ":libm.so.6\n");
  // Both are really loaded into the program (and its children).
  r = RunWrapper({"/bin/cat", "/proc/self/maps"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("/libleakwatch.so"), std::string::npos);
  EXPECT_NE(r.out.find("/libm.so.6"), std::string::npos) << r.out;
  // No LD_PRELOAD before: just the agent, no stray separator.
  r = RunWrapper({"/bin/sh", "-c", "printenv LD_PRELOAD"});
  EXPECT_EQ(r.out, Agent() + "\n");
}

TEST(Wrapper, SetsTheVariables) {
  TempDir temp;
  std::string suppressions = temp.path() + "/supp.txt";
  std::ofstream(suppressions) << "# nothing\n";
  RunResult r =
      RunWrapper({"--threshold", "5s", "--log", "/tmp/lw-%p.log", "--json",
                  "--json-log", "/tmp/lw-%p.json", "--exitcode", "7",
                  "--suppressions", suppressions, "--metrics", "/tmp/lw.prom",
                  "--stats", "--track", "pg,thread", "--", "/usr/bin/env"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_THRESHOLD_MS"), "5s");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_LOG"), "/tmp/lw-%p.log");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_FORMAT"), "json");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_JSON_LOG"), "/tmp/lw-%p.json");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_EXITCODE"), "7");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_SUPPRESSIONS"), suppressions);
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_METRICS"), "/tmp/lw.prom");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_STATS"), "1");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_TRACK"), "pg,thread");
  EXPECT_EQ(EnvValue(r.out, "LD_PRELOAD"), Agent());

  // --option=VALUE is the same.
  r = RunWrapper({"--threshold=250ms", "--track=none", "/usr/bin/env"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_THRESHOLD_MS"), "250ms");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_TRACK"), "none");
}

TEST(Wrapper, LeavesTheCallersVariablesAlone) {
  RunOptions options;
  options.env = {{"LEAKWATCH_SQL", "full"},
                 {"LEAKWATCH_LOG", "/tmp/exact.log"},
                 {"LEAKWATCH_THRESHOLD_MS", "9s"}};
  RunResult r = RunWrapper({"/usr/bin/env"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_SQL"), "full");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_LOG"), "/tmp/exact.log");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_THRESHOLD_MS"), "9s");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_FORMAT"), "<unset>");
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_STATS"), "<unset>");
  // An option overrides the caller's variable.
  r = RunWrapper({"--threshold", "1s", "/usr/bin/env"}, options);
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_THRESHOLD_MS"), "1s");
}

TEST(Wrapper, LogGetsThePidUnlessItHasOneOrIsNotAFile) {
  std::string cwd = fs::current_path().string();
  auto log_for = [](const std::string& file) {
    RunResult r = RunWrapper({"--log", file, "/usr/bin/env"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return EnvValue(r.out, "LEAKWATCH_LOG");
  };
  EXPECT_EQ(log_for("/tmp/leaks.log"), "/tmp/leaks.log.%p");
  EXPECT_EQ(log_for("/tmp/leaks-%p.log"), "/tmp/leaks-%p.log");
  EXPECT_EQ(log_for("/tmp/100%%.log"), "/tmp/100%%.log.%p");  // %% is a %
  EXPECT_EQ(log_for("/dev/stderr"), "/dev/stderr");
  EXPECT_EQ(log_for("/dev/null"), "/dev/null");
  TempDir temp;
  std::string fifo = temp.path() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(log_for(fifo), fifo);
  // Relative paths are made absolute (the program may change directory).
  EXPECT_EQ(log_for("rel.log"), cwd + "/rel.log.%p");
  EXPECT_EQ(log_for("sub/rel-%p.log"), cwd + "/sub/rel-%p.log");
  // "" is stderr, as for the agent.
  EXPECT_EQ(log_for(""), "");
  // --json-log FILE: the same rules.
  auto json_log_for = [](const std::string& file) {
    RunResult r = RunWrapper({"--json-log", file, "/usr/bin/env"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return EnvValue(r.out, "LEAKWATCH_JSON_LOG");
  };
  EXPECT_EQ(json_log_for("/tmp/leaks.json"), "/tmp/leaks.json.%p");
  EXPECT_EQ(json_log_for("/tmp/leaks-%p.json"), "/tmp/leaks-%p.json");
  EXPECT_EQ(json_log_for("rel.json"), cwd + "/rel.json.%p");
  EXPECT_EQ(json_log_for(fifo), fifo);
}

TEST(Wrapper, RelativeFilesAreMadeAbsolute) {
  TempDir temp;
  std::string cwd = fs::current_path().string();
  // A readable relative suppressions file: the test's own source, by a path
  // relative to the current directory.
  std::string source =
      std::string(LEAKWATCH_SOURCE_DIR) + "/tests/integration/wrapper_test.cc";
  std::string relative = fs::relative(source, cwd).string();
  ASSERT_NE(relative.front(), '/');
  RunResult r =
      RunWrapper({"--suppressions", relative, "--metrics", "m/leakwatch.prom",
                  "--track", "none", "/usr/bin/env"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_SUPPRESSIONS"), cwd + "/" + relative);
  EXPECT_EQ(EnvValue(r.out, "LEAKWATCH_METRICS"), cwd + "/m/leakwatch.prom");
}

TEST(Wrapper, HelpListsEveryOption) {
  RunResult r = RunProgram({WrapperPath(), "--help"}, NoPreload());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("usage: leakwatch"), std::string::npos);
  // Every option the script parses: the keys of its value_options table and
  // the patterns of its case statement.
  std::string script = ReadFile(WrapperPath());
  std::set<std::string> options;
  std::regex key(R"(\[(--[a-z-]+)\]=)");
  std::regex pattern(R"(^\s+((?:-[a-z]|--[a-z-]+)(?: \| --[a-z-]+)*)\))");
  for (std::sregex_iterator it(script.begin(), script.end(), key), end;
       it != end; ++it) {
    options.insert((*it)[1]);
  }
  for (const std::string& line : Lines(script)) {
    std::smatch m;
    if (!std::regex_search(line, m, pattern)) continue;
    std::string alternatives = m[1];
    std::regex word(R"(--?[a-z-]+)");
    for (std::sregex_iterator
             it(alternatives.begin(), alternatives.end(), word),
         end;
         it != end; ++it) {
      options.insert((*it)[0]);
    }
  }
  for (const char* expected :
       {"--threshold", "--log", "--json", "--json-log", "--exitcode",
        "--suppressions", "--metrics", "--stats", "--track", "--library",
        "--help", "--version"}) {
    EXPECT_EQ(options.count(expected), 1u) << expected << " not parsed?";
  }
  for (const std::string& option : options) {
    std::regex listed("(^|[ ,])" + option + "([ =,]|$)", std::regex::multiline);
    EXPECT_TRUE(std::regex_search(r.out, listed))
        << option << " is not in --help:\n"
        << r.out;
  }
  // Each variable the options set is named.
  for (const char* variable :
       {"LEAKWATCH_THRESHOLD_MS", "LEAKWATCH_LOG", "LEAKWATCH_FORMAT",
        "LEAKWATCH_JSON_LOG", "LEAKWATCH_EXITCODE", "LEAKWATCH_SUPPRESSIONS",
        "LEAKWATCH_METRICS", "LEAKWATCH_STATS", "LEAKWATCH_TRACK"}) {
    EXPECT_NE(r.out.find(variable), std::string::npos) << variable;
  }
}

TEST(Wrapper, UsageErrorsExitWith2) {
  TempDir temp;
  std::vector<std::vector<std::string>> cases = {
      {"--bogus", "/bin/true"},
      {"-x", "/bin/true"},
      {"--json=yes", "/bin/true"},
      {"--threshold"},    // no value
      {},                 // no program
      {"--stats", "--"},  // no program after --
      {"--suppressions", temp.path() + "/absent", "/bin/true"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv = {WrapperPath()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = RunProgram(argv, NoPreload());
    std::string what = args.empty() ? "(no arguments)" : args[0];
    EXPECT_EQ(r.exit_code, 2) << what << ": " << r.err;
    EXPECT_EQ(r.out, "") << what;
    EXPECT_NE(r.err.find("usage: leakwatch"), std::string::npos)
        << what << ": " << r.err;
    EXPECT_EQ(Lines(r.err).size(), 2u) << what << ": " << r.err;
  }
}

TEST(Wrapper, MissingOrNonExecutableProgramExitsLikeAShell) {
  TempDir temp;
  RunResult r = RunWrapper({"leakwatch-no-such-command"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_EQ(r.err, "leakwatch: leakwatch-no-such-command: command not found\n");
  r = RunWrapper({temp.path() + "/absent"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos);
  std::string plain = temp.path() + "/not-executable";
  std::ofstream(plain) << "#!/bin/sh\n";
  r = RunWrapper({plain});
  EXPECT_EQ(r.exit_code, 126);
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  r = RunWrapper({temp.path()});
  EXPECT_EQ(r.exit_code, 126);
  EXPECT_NE(r.err.find("Is a directory"), std::string::npos) << r.err;
}

TEST(Wrapper, VersionNamesTheLibrary) {
  RunResult r = RunWrapper({"--version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(
      r.out, std::regex(R"(leakwatch \d+\.\d+\.\d+ \(library: (.*)\)\n)")))
      << r.out;
  EXPECT_NE(r.out.find("(library: " + Agent() + ")"), std::string::npos)
      << r.out;
}

// Copies the wrapper to DIR/<bin>/leakwatch and links the agent as
// DIR/<lib>/libleakwatch.so: the layouts of an installed tree (bin, lib) and
// of the source tree (scripts, build).
std::string LayOut(const std::string& dir, const std::string& bin,
                   const std::string& lib) {
  fs::create_directories(dir + "/" + bin);
  fs::create_directories(dir + "/" + lib);
  std::string wrapper = dir + "/" + bin + "/leakwatch";
  fs::copy_file(WrapperPath(), wrapper);
  fs::create_symlink(AgentPath(), dir + "/" + lib + "/libleakwatch.so");
  return wrapper;
}

TEST(Wrapper, FindsTheLibraryRelativeToItself) {
  TempDir temp;
  for (const auto& [bin, lib] :
       std::vector<std::pair<std::string, std::string>>{{"bin", "lib"},
                                                        {"scripts", "build"}}) {
    std::string root = temp.path() + "/" + bin;
    std::string wrapper = LayOut(root, bin, lib);
    RunResult r = RunProgram({wrapper, "/bin/sh", "-c", "printenv LD_PRELOAD"},
                             NoPreload());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Symlinks resolved: the real file is preloaded.
    EXPECT_EQ(r.out, Agent() + "\n") << bin;
    // Through a symlink to the wrapper (~/bin/leakwatch -> PREFIX/bin/...).
    std::string link = temp.path() + "/link-" + bin;
    fs::create_symlink(wrapper, link);
    r = RunProgram({link, "/bin/sh", "-c", "printenv LD_PRELOAD"}, NoPreload());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, Agent() + "\n") << bin;
  }
  // No library next to it: a clear error, exit 1, nothing run.
  fs::create_directories(temp.path() + "/bare/bin");
  std::string bare = temp.path() + "/bare/bin/leakwatch";
  fs::copy_file(WrapperPath(), bare);
  RunResult r = RunProgram({bare, "/bin/echo", "ran"}, NoPreload());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("cannot find libleakwatch.so"), std::string::npos)
      << r.err;
}

TEST(Wrapper, RunsTheAgent) {
  RunResult r =
      RunWrapper({"--stats", ProgramPath("thr_unjoined"), "join", "3", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3 threads finished, 3 joined\n");
  KindTotals totals = ParseStats(r.err, "thread");
  EXPECT_EQ(totals.acquired, 3) << r.err;
  EXPECT_EQ(totals.released, 3) << r.err;
}

TEST(Wrapper, ExitCodeGatesOnWhatIsNotAnnotated) {
  // The CI use: --exitcode N fires for the forgotten thread; a thread kept
  // on purpose and annotated does not count; a clean program keeps its 0.
  RunResult r = RunWrapper({"--exitcode", "9", ProgramPath("annot_threads")});
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_EQ(r.out, "loaded=1 kept=1 null=0\n");
  r = RunWrapper(
      {"--exitcode", "9", ProgramPath("annot_threads"), "keep-only"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "loaded=1 kept=1 null=0\n");
  EXPECT_FALSE(ParseExitReport(r.err).present) << r.err;
}

// --- cmake --install
// ------------------------------------------------------------

TEST(Install, InstalledWrapperRunsTheInstalledAgent) {
  TempDir temp;
  std::string prefix = temp.path() + "/prefix";
  RunOptions install = NoPreload(120);
  install.env["DESTDIR"] = "";  // unset: install under `prefix` itself
  RunResult r = RunProgram({LEAKWATCH_CMAKE_COMMAND, "--install",
                            LEAKWATCH_BINARY_DIR, "--prefix", prefix},
                           install);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* file :
       {"/bin/leakwatch", "/lib/libleakwatch.so", "/include/leakwatch.h"}) {
    EXPECT_TRUE(fs::exists(prefix + file)) << file;
  }
  EXPECT_EQ(access((prefix + "/bin/leakwatch").c_str(), X_OK), 0);
  EXPECT_EQ(
      ReadFile(prefix + "/include/leakwatch.h"),
      ReadFile(std::string(LEAKWATCH_SOURCE_DIR) + "/include/leakwatch.h"));

  r = RunProgram({prefix + "/bin/leakwatch", "--version"}, NoPreload());
  EXPECT_NE(r.out.find("(library: " + prefix + "/lib/libleakwatch.so)"),
            std::string::npos)
      << r.out << r.err;
  r = RunProgram({prefix + "/bin/leakwatch", "--stats", "--",
                  ProgramPath("thr_unjoined"), "join", "2", "0"},
                 NoPreload());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  KindTotals totals = ParseStats(r.err, "thread");
  EXPECT_EQ(totals.acquired, 2) << r.err;
  EXPECT_EQ(totals.released, 2) << r.err;

  // A program built against the installed header alone (no -l flag) links,
  // runs without the agent, and sees the agent under the installed wrapper.
  std::string source = temp.path() + "/keep.c";
  std::ofstream(source) << R"(#include <leakwatch.h>
#include <stdio.h>
static void* work(void* arg) { return arg; }
int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, work, NULL);
  int kept = leakwatch_ignore_thread(t);
  pthread_join(t, NULL);
  printf("loaded=%d kept=%d\n", leakwatch_is_loaded(), kept);
  return 0;
}
)";
  std::string binary = temp.path() + "/keep";
  r = RunProgram({LEAKWATCH_C_COMPILER, "-Wall", "-Wextra", "-Werror",
                  "-I" + prefix + "/include", source, "-o", binary, "-pthread"},
                 NoPreload(120));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = RunProgram({binary}, NoPreload());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "loaded=0 kept=0\n");
  r = RunProgram({prefix + "/bin/leakwatch", binary}, NoPreload());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "loaded=1 kept=1\n");
  EXPECT_EQ(r.err, "");
}

// --- annotations (include/leakwatch.h)
// ------------------------------------------

// annot_ignore (weak-symbol path) and annot_ignore_nopie (dlsym path).
class Annotations : public ::testing::TestWithParam<std::string> {};

TEST_P(Annotations, OnlyTheUnannotatedConnectionIsReported) {
  if (!RequirePostgres()) return;
  RunResult r = RunProgram({ProgramPath(GetParam())}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "loaded=1 config=1 settings=1 reaper=1\n"
            "done server_version\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_TRUE(report.present) << r.err;
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "pg.conn");
  EXPECT_EQ(report.groups[0].count, 1);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "handle_request")) << r.err;
  EXPECT_EQ(report.total, 1);
  EXPECT_EQ(report.per_kind, (std::map<std::string, int>{{"pg.conn", 1}}));
}

TEST_P(Annotations, WithoutAnnotationsEverythingIsReported) {
  // The control: the same handles, not annotated, are all leaks.
  if (!RequirePostgres()) return;
  RunResult r = RunProgram({ProgramPath(GetParam()), "plain"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "loaded=1 config=-1 settings=-1 reaper=-1\n"
            "done server_version\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 4u) << r.err;
  EXPECT_EQ(report.per_kind,
            (std::map<std::string, int>{
                {"pg.conn", 2}, {"pg.result", 1}, {"thread", 1}}))
      << r.err;
  std::set<std::string> functions;
  for (const ExitGroup& g : report.groups) {
    for (const char* f : {"open_config_connection", "load_settings",
                          "start_reaper", "handle_request"}) {
      if (GroupHasFrame(g, f)) functions.insert(f);
    }
  }
  EXPECT_EQ(functions.size(), 4u) << r.err;
}

TEST_P(Annotations, RunsWithoutTheAgent) {
  if (!RequirePostgres()) return;
  RunResult r = RunProgram({ProgramPath(GetParam())}, NoPreload());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "loaded=0 config=0 settings=0 reaper=0\n"
            "done server_version\n");
  EXPECT_EQ(r.err, "");
}

INSTANTIATE_TEST_SUITE_P(PieAndNoPie, Annotations,
                         ::testing::Values("annot_ignore",
                                           "annot_ignore_nopie"));

TEST(AnnotationsCxx, AnExitedThreadKeptOnPurposeIsNotReported) {
  RunResult r = RunProgram({ProgramPath("annot_threads")}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "loaded=1 kept=1 null=0\n");
  ExitReport report = ParseExitReport(r.err);
  ASSERT_EQ(report.groups.size(), 1u) << r.err;
  EXPECT_EQ(report.groups[0].kind, "thread");
  EXPECT_EQ(report.groups[0].count, 1);
  EXPECT_TRUE(GroupHasFrame(report.groups[0], "start_forgotten_thread"))
      << r.err;
  EXPECT_FALSE(GroupHasFrame(report.groups[0], "start_kept_thread")) << r.err;

  r = RunProgram({ProgramPath("annot_threads")}, NoPreload());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "loaded=0 kept=0 null=0\n");
  EXPECT_EQ(r.err, "");
}

}  // namespace
}  // namespace leakwatch::testing
