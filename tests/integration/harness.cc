#include "tests/integration/harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <utility>

#include <gtest/gtest.h>

extern char** environ;

namespace leakwatch::testing {

std::string AgentPath() { return LEAKWATCH_AGENT_PATH; }

std::string ProgramPath(const std::string& name) {
  return std::string(LEAKWATCH_PROGRAMS_DIR) + "/" + name;
}

namespace {

double NowS() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

}  // namespace

RunResult RunProgram(const std::vector<std::string>& argv,
                     const RunOptions& options) {
  RunResult result;
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  // Start from a clean leakwatch configuration: only what the test asks for.
  for (auto it = env.begin(); it != env.end();) {
    if (it->first.rfind("LEAKWATCH_", 0) == 0) {
      it = env.erase(it);
    } else {
      ++it;
    }
  }
  env.erase("LD_PRELOAD");
  // Most tests count what a program still holds at exit, reachable or not
  // (globals are the simple way to keep a handle): they ask for the count
  // with the leaks. The reachability tests (pool_reach_test.cc) say what
  // they want.
  if (options.preload) {
    env["LD_PRELOAD"] = AgentPath();
    env["LEAKWATCH_EXIT_REACHABLE"] = "count";
  }
  for (const auto& [k, v] : options.env) {
    if (v.empty()) {
      env.erase(k);
    } else {
      env[k] = v;
    }
  }
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (std::string& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(),
                        envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    ADD_FAILURE() << "cannot run " << argv[0] << ": " << std::strerror(rc);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return result;
  }
  double deadline = NowS() + options.timeout_s;
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    double left = deadline - NowS();
    if (left <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    int n = poll(fds, 2, static_cast<int>(left * 1000) + 1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        continue;
      }
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::vector<std::string> LinesWith(const std::string& text,
                                   const std::string& needle) {
  std::vector<std::string> lines;
  for (std::string& line : Lines(text)) {
    if (line.find(needle) != std::string::npos) {
      lines.push_back(std::move(line));
    }
  }
  return lines;
}

bool RequirePostgres() {
  const char* host = getenv("PGHOST");
  const char* port = getenv("PGPORT");
  if (host == nullptr || port == nullptr) {
    ADD_FAILURE() << "no PostgreSQL server configured (PGHOST/PGPORT unset): "
                     "run the tests with scripts/test.sh, which starts one";
    return false;
  }
  RunOptions options;
  options.preload = false;
  options.timeout_s = 30;
  RunResult r = RunProgram({"/usr/lib/postgresql/15/bin/pg_isready", "-h",
                            host, "-p", port},
                           options);
  if (r.exit_code != 0) {
    ADD_FAILURE() << "PostgreSQL at " << host << ":" << port
                  << " does not answer: " << r.out << r.err;
    return false;
  }
  return true;
}

namespace {

std::string EnvOr(const char* name, const char* fallback) {
  const char* v = getenv(name);
  return v != nullptr && v[0] != '\0' ? v : fallback;
}

}  // namespace

MysqlSettings Mysql() {
  MysqlSettings s;
  s.host = EnvOr("MYSQL_TEST_HOST", "127.0.0.1");
  s.port = EnvOr("MYSQL_TEST_PORT", "");
  s.user = EnvOr("MYSQL_TEST_USER", "leakwatch");
  s.password = EnvOr("MYSQL_TEST_PASSWORD", "");
  s.db = EnvOr("MYSQL_TEST_DB", "leakwatch");
  return s;
}

bool RequireMysql() {
  MysqlSettings s = Mysql();
  if (s.port.empty()) {
    ADD_FAILURE() << "no MariaDB server configured (MYSQL_TEST_PORT unset): "
                     "run the tests with scripts/test.sh, which starts one";
    return false;
  }
  RunOptions options;
  options.preload = false;
  options.timeout_s = 30;
  // The password through the environment, not the command line.
  options.env = {{"MYSQL_PWD", s.password}};
  RunResult r = RunProgram({"/usr/bin/mariadb-admin", "--no-defaults",
                            "--protocol=TCP", "--connect-timeout=10",
                            "-h", s.host, "-P", s.port, "-u", s.user, "ping"},
                           options);
  if (r.exit_code != 0) {
    ADD_FAILURE() << "MariaDB at " << s.host << ":" << s.port
                  << " does not answer: " << r.out << r.err;
    return false;
  }
  return true;
}

KindTotals ParseStats(const std::string& text, const std::string& kind) {
  std::regex re(std::regex_replace(kind, std::regex(R"(\.)"), R"(\.)") +
                R"( acquired (\d+) released (\d+)(?: replaced (\d+))?)");
  std::smatch m;
  KindTotals t;
  for (const std::string& line : LinesWith(text, "stats: ")) {
    if (std::regex_search(line, m, re)) {
      t.acquired = std::stol(m[1]);
      t.released = std::stol(m[2]);
      if (m[3].matched) t.replaced = std::stol(m[3]);
    }
  }
  return t;
}

ExitReport ParseExitReport(const std::string& text) {
  ExitReport report;
  static const std::regex kHeader(
      R"(leakwatch\[\d+\]: exit report for .*: (\d+) handles? still held)");
  static const std::regex kGroup(
      R"(leakwatch\[\d+\]: (\d+) (\S+) still held at exit from site (\d+) \(oldest held [^;]+; (?:(\d+) past|live threshold off|growing site)[^)]*\), acquired at:)");
  static const std::regex kSummary(
      R"(leakwatch\[\d+\]: SUMMARY: (\d+) handles? still held at exit: (.*))");
  static const std::regex kKindCount(R"((\d+) (\S+?)(?:,|$))");
  std::istringstream in(text);
  std::string line;
  ExitGroup* current = nullptr;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kHeader)) {
      report.present = true;
      current = nullptr;
    } else if (std::regex_search(line, m, kGroup)) {
      ExitGroup g;
      g.count = std::stoi(m[1]);
      g.kind = m[2];
      g.site = std::stoi(m[3]);
      g.past_threshold = m[4].matched ? std::stoi(m[4]) : 0;
      g.header = line;
      report.groups.push_back(g);
      current = &report.groups.back();
    } else if (std::regex_search(line, m, kSummary)) {
      report.total = std::stoi(m[1]);
      std::string kinds = m[2];
      for (std::sregex_iterator it(kinds.begin(), kinds.end(), kKindCount), end;
           it != end; ++it) {
        report.per_kind[(*it)[2]] = std::stoi((*it)[1]);
      }
      current = nullptr;
    } else if (current != nullptr && line.rfind("    #", 0) == 0) {
      current->frames.push_back(line);
    } else if (current != nullptr && line.rfind("    example: ", 0) == 0) {
      current->example = line;
    }
  }
  return report;
}

bool GroupHasFrame(const ExitGroup& group, const std::string& function) {
  for (const std::string& f : group.frames) {
    if (f.find(" in " + function) != std::string::npos) return true;
  }
  return false;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/leakwatch-test-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return;
  }
  path_ = dir;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

int CountLiveWarnings(const std::string& text, const std::string& kind,
                      const std::string& threshold) {
  std::string k = std::regex_replace(kind, std::regex(R"(\.)"), R"(\.)");
  std::regex warning(": " + k + " 0x[0-9a-f]+ (idle|held) [0-9.]+ m?s \\(threshold " +
                     threshold);
  std::regex more(R"(\.\.\. and (\d+) more )" + k +
                  R"( from site \d+ past the threshold)");
  int count = static_cast<int>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), warning),
                    std::sregex_iterator()));
  for (std::sregex_iterator it(text.begin(), text.end(), more), end; it != end;
       ++it) {
    count += std::stoi((*it)[1]);
  }
  return count;
}

RunResult RunWithMetrics(const std::string& program,
                         const std::string& metrics_pattern,
                         const std::string& copy, RunOptions options) {
  options.env["LEAKWATCH_METRICS"] = metrics_pattern;
  // The program is told the path with its own pid: it reads the file itself.
  return RunProgram(
      {"/bin/sh", "-c",
       "exec \"$0\" \"$(printf '%s' \"$1\" | sed \"s/%p/$$/\")\" \"$2\"",
       ProgramPath(program), metrics_pattern, copy},
      options);
}

long MetricsSample(const std::string& text, const std::string& name,
                   const std::string& kind) {
  std::smatch m;
  std::regex re(name + R"(\{kind=")" +
                std::regex_replace(kind, std::regex(R"(\.)"), R"(\.)") +
                R"("[^}]*\} (\d+))");
  return std::regex_search(text, m, re) ? std::stol(m[1]) : -1L;
}

}  // namespace leakwatch::testing
