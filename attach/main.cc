// leakwatch-attach: the work behind `leakwatch attach|report|detach PID`
// (scripts/leakwatch parses the options and runs this).
//
//   leakwatch-attach attach PID LIBRARY [FOR_MS]
//   leakwatch-attach report PID
//   leakwatch-attach detach PID
//
// attach takes the agent's options from its own environment (the
// LEAKWATCH_* variables the wrapper set from its options, and any the user
// set), checks them as the agent would, and passes them to the agent. With
// FOR_MS, it stays attached that long (or until SIGINT/SIGTERM), then writes
// a report and detaches.
//
// Exit status: 0 done; 1 refused or failed (one line on stderr says why and
// what to change); 2 usage.
#include <dlfcn.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "attach/remote.h"
#include "interpose/attach.h"
#include "tracker/options.h"

extern char** environ;

namespace leakwatch {
namespace {

constexpr const char* kMe = "leakwatch";
constexpr int kStopWaitMs = 5000;   // for a thread waiting in a system call
constexpr int kWorkWaitMs = 30000;  // for the agent's thread to finish

int Refuse(const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", kMe, why.c_str());
  return 1;
}

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string ProgramOf(pid_t pid) {
  return ReadLine("/proc/" + std::to_string(pid) + "/comm");
}

// "process 4242 (my-service)": how every line names the process.
std::string Named(pid_t pid) {
  return "process " + std::to_string(pid) + " (" + ProgramOf(pid) + ")";
}

// What to change when ptrace is refused.
std::string PermissionAdvice(pid_t pid) {
  std::string scope = ReadLine("/proc/sys/kernel/yama/ptrace_scope");
  struct stat st;
  std::string proc = "/proc/" + std::to_string(pid);
  bool other_user = stat(proc.c_str(), &st) == 0 && st.st_uid != geteuid();
  std::string out = "not permitted to trace " + Named(pid) + ": ";
  if (other_user && geteuid() != 0) {
    out += "it runs as another user (uid " + std::to_string(st.st_uid) +
           "); run leakwatch as that user or as root";
  } else if (scope == "1") {
    out +=
        "kernel.yama.ptrace_scope is 1 (only a parent may trace); run as "
        "root, give leakwatch CAP_SYS_PTRACE, or set "
        "`sysctl kernel.yama.ptrace_scope=0`";
  } else if (scope == "2") {
    out +=
        "kernel.yama.ptrace_scope is 2 (only CAP_SYS_PTRACE may trace); "
        "run as root or with CAP_SYS_PTRACE";
  } else if (scope == "3") {
    out += "kernel.yama.ptrace_scope is 3 (no tracing at all until reboot)";
  } else {
    out +=
        "leakwatch needs CAP_SYS_PTRACE here (in a container: docker run "
        "--cap-add=SYS_PTRACE; Kubernetes: securityContext.capabilities."
        "add [\"SYS_PTRACE\"])";
  }
  return out + "; nothing was changed";
}

// The agent as mapped in the process: its path and load address, and the
// address of its state.
struct Agent {
  std::string path;
  uintptr_t base = 0;
  uintptr_t state = 0;
};

std::string InRoot(pid_t pid, const std::string& path) {
  return "/proc/" + std::to_string(pid) + "/root" + path;
}

// The agent in `maps`: a file named libleakwatch*, or `library` itself.
bool FindAgent(pid_t pid, const std::vector<Mapping>& maps, Agent* agent,
               const std::string& library = "") {
  for (const Mapping& m : maps) {
    size_t slash = m.path.rfind('/');
    std::string base =
        slash == std::string::npos ? m.path : m.path.substr(slash + 1);
    const bool named = base.rfind("libleakwatch", 0) == 0;
    if (!named && (library.empty() || m.path != library)) continue;
    const std::string file = InRoot(pid, m.path);
    const uintptr_t bias = LoadBase(maps, m.path, file);
    if (bias == 0) continue;  // not the loaded image
    agent->path = m.path;
    agent->base = bias;
    uintptr_t value = SymbolValue(file, "leakwatch_agent_state");
    agent->state = value != 0 ? bias + value : 0;
    return true;
  }
  return false;
}

bool ReadState(pid_t pid, const Agent& agent, LeakwatchAgentState* state) {
  return agent.state != 0 &&
         ReadRemote(pid, agent.state, state, sizeof *state) &&
         state->magic == kAgentStateMagic &&
         state->version == kAgentStateVersion;
}

// Waits until `done(state)`; false after kWorkWaitMs or if the state cannot
// be read (the process ended).
template <typename Done>
bool WaitForAgent(pid_t pid, const Agent& agent, LeakwatchAgentState* state,
                  Done done) {
  const double give_up = MonotonicSeconds() + kWorkWaitMs / 1000.0;
  while (MonotonicSeconds() < give_up) {
    if (!ReadState(pid, agent, state)) return false;
    if (done(*state)) return true;
    usleep(2000);
  }
  return false;
}

// The address of `name` in the process: in the first mapped object whose
// file name starts with one of `files` and defines it.
uintptr_t RemoteSymbol(pid_t pid, const std::vector<Mapping>& maps,
                       std::initializer_list<const char*> files,
                       const char* name) {
  for (const char* file : files) {
    for (const Mapping& m : maps) {
      size_t slash = m.path.rfind('/');
      if (slash == std::string::npos || m.path.substr(slash + 1) != file) {
        continue;
      }
      const std::string in_root = InRoot(pid, m.path);
      const uintptr_t bias = LoadBase(maps, m.path, in_root);
      const uintptr_t value = bias != 0 ? SymbolValue(in_root, name) : 0;
      if (value != 0) return bias + value;
    }
  }
  return 0;
}

std::string Config(std::string* errors) {
  std::string config;
  for (char** e = environ; *e != nullptr; ++e) {
    // Attaching never changes the process's exit status.
    if (std::strncmp(*e, "LEAKWATCH_EXITCODE=", 19) == 0) continue;
    if (std::strncmp(*e, "LEAKWATCH_", 10) == 0) {
      config += *e;
      config += '\n';
    }
  }
  std::vector<std::string> said;
  ParseOptions([](const char* name) { return getenv(name); }, &said);
  for (const std::string& line : said) *errors += line + "\n";
  return config;
}

// The process tracing `pid` (a debugger, strace), or 0.
long TracerOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TracerPid:", 0) == 0) return std::atol(line.c_str() + 10);
  }
  return 0;
}

// Stops a thread of `pid` (mapped as `maps`) and keeps its errno; on
// failure says why and returns false.
bool StopThread(pid_t pid, const std::vector<Mapping>& maps,
                StoppedThread* thread, int* status) {
  if (long tracer = TracerOf(pid)) {
    *status = Refuse("process " + std::to_string(pid) + " is being traced by " +
                     std::to_string(tracer) + " (" +
                     ProgramOf(static_cast<pid_t>(tracer)) +
                     "): a process has one tracer; nothing was changed");
    return false;
  }
  std::string error;
  bool permission = false;
  const uintptr_t errno_location =
      RemoteSymbol(pid, maps, {"libc.so.6"}, "__errno_location");
  if (errno_location == 0) {
    *status = Refuse("process " + std::to_string(pid) +
                     " has no libc.so.6 (a static program?); nothing was "
                     "changed");
    return false;
  }
  if (!thread->Stop(pid, kStopWaitMs, &error, &permission)) {
    *status = Refuse(permission ? PermissionAdvice(pid)
                                : "cannot attach to " + std::to_string(pid) +
                                      ": " + error + "; nothing was changed");
    return false;
  }
  if (!thread->SaveErrno(errno_location, &error)) {
    thread->Release();
    *status = Refuse("cannot attach to " + std::to_string(pid) + ": " + error +
                     "; nothing was changed");
    return false;
  }
  return true;
}

bool Exists(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

volatile sig_atomic_t g_stop = 0;

// The target's mappings, or the refusal (its exit status, nonzero) when they
// cannot be read: permission advice, or that there is no such process.
int ReadTargetMappings(pid_t pid, std::vector<Mapping>* maps) {
  int err = 0;
  if (ReadMappings(pid, maps, &err)) return 0;
  return Refuse(err == EACCES || err == EPERM
                    ? PermissionAdvice(pid)
                    : "no process " + std::to_string(pid));
}

// `leakwatch report` and `leakwatch detach`: one call into the agent, then
// its own thread does the work, which is waited for.
int Control(pid_t pid, AttachCommand command) {
  const char* what = command == kCommandReport ? "report" : "detach";
  std::vector<Mapping> maps;
  if (int refused = ReadTargetMappings(pid, &maps)) return refused;
  const std::string program = ProgramOf(pid);
  Agent agent;
  LeakwatchAgentState state{};
  if (!FindAgent(pid, maps, &agent) || !ReadState(pid, agent, &state)) {
    return Refuse(std::string(what) + ": " + Named(pid) +
                  " was never attached; nothing was changed");
  }
  if (state.mode == kModePreloaded) {
    return Refuse(std::string(what) + ": " + Named(pid) +
                  " runs with leakwatch preloaded, not attached" +
                  (command == kCommandReport
                       ? " (set LEAKWATCH_REPORT_INTERVAL when it starts for "
                         "periodic reports)"
                       : "") +
                  "; nothing was changed");
  }
  if (state.state != kStateAttached) {
    return Refuse(std::string(what) + ": " + Named(pid) +
                  " is not attached now" +
                  (state.state == kStateDetached ? " (detached already)" : "") +
                  "; nothing was changed");
  }
  uintptr_t control_fn =
      SymbolValue(InRoot(pid, agent.path), "leakwatch_control");
  if (control_fn == 0) return Refuse(agent.path + " has no leakwatch_control");
  const uint32_t reports_before = state.reports;
  StoppedThread thread;
  int status = 0;
  if (!StopThread(pid, maps, &thread, &status)) return status;
  uintptr_t result = 0;
  std::string error;
  bool called =
      thread.Call(agent.base + control_fn, {static_cast<uintptr_t>(command)},
                  "", &result, &error);
  const pid_t tid = thread.tid();
  const double stopped = thread.Release();
  if (!called) return Refuse(std::string(what) + " failed: " + error);
  bool done =
      WaitForAgent(pid, agent, &state, [&](const LeakwatchAgentState& s) {
        return command == kCommandReport
                   ? s.reports != reports_before || s.state == kStateFailed
                   : s.state != kStateDetaching;
      });
  if (!done) {
    return Refuse(std::string(what) + ": the agent in " + std::to_string(pid) +
                  " did not answer");
  }
  if (state.state == kStateFailed) {
    return Refuse(std::string(what) + " failed: " + state.message);
  }
  if (command == kCommandReport) {
    std::printf(
        "%s: report written by %d (%s); thread %d was stopped for "
        "%.2f ms\n",
        kMe, pid, program.c_str(), tid, stopped * 1000);
  } else {
    std::printf(
        "%s: detached from %d (%s): calls restored%s; the agent "
        "stays loaded, inert; thread %d was stopped for %.2f ms, the "
        "agent's own thread worked %.2f ms\n",
        kMe, pid, program.c_str(),
        state.detach_failed > 0
            ? (" but " + std::to_string(state.detach_failed) +
               " could not be written back")
                  .c_str()
            : "",
        tid, stopped * 1000, state.work_ns / 1e6);
  }
  std::fflush(stdout);
  return 0;
}

int Attach(pid_t pid, const std::string& library, long for_ms) {
  std::string errors;
  std::string config = Config(&errors);
  std::fputs(errors.c_str(), stderr);  // bad values: the defaults are used
  std::vector<Mapping> maps;
  if (int refused = ReadTargetMappings(pid, &maps)) return refused;
  const std::string program = ProgramOf(pid);
  Agent agent;
  LeakwatchAgentState state{};
  if (FindAgent(pid, maps, &agent, library)) {
    if (!ReadState(pid, agent, &state)) {
      return Refuse(Named(pid) + " has " + agent.path +
                    " loaded but its state cannot be read (another version "
                    "of leakwatch?); nothing was changed");
    }
    if (state.mode == kModePreloaded) {
      return Refuse(Named(pid) +
                    " runs with leakwatch preloaded (LD_PRELOAD): it is "
                    "watched already; nothing was changed");
    }
    if (state.state == kStateAttached || state.state == kStateAttaching ||
        state.state == kStateDetaching) {
      return Refuse(Named(pid) + " is attached already (leakwatch detach " +
                    std::to_string(pid) + " first); nothing was changed");
    }
  } else {
    struct stat ours, theirs;
    if (stat(library.c_str(), &ours) != 0) {
      return Refuse("cannot read " + library);
    }
    const int seen = stat(InRoot(pid, library).c_str(), &theirs);
    if (seen != 0 && (errno == EACCES || errno == EPERM)) {
      return Refuse(PermissionAdvice(pid));
    }
    if (seen != 0 || ours.st_dev != theirs.st_dev ||
        ours.st_ino != theirs.st_ino) {
      return Refuse(Named(pid) + " does not see " + library +
                    " at that path (another mount namespace, a container?): "
                    "put the library inside it and give --library; nothing "
                    "was changed");
    }
  }

  uintptr_t dlopen_fn = 0, dlerror_fn = 0;
  if (agent.base == 0) {
    dlopen_fn = RemoteSymbol(pid, maps, {"libc.so.6", "libdl.so.2"}, "dlopen");
    dlerror_fn =
        RemoteSymbol(pid, maps, {"libc.so.6", "libdl.so.2"}, "dlerror");
    if (dlopen_fn == 0) {
      return Refuse(Named(pid) +
                    " has no dynamic loader interface (a static program?); "
                    "nothing was changed");
    }
  }

  StoppedThread thread;
  int status = 0;
  if (!StopThread(pid, maps, &thread, &status)) return status;
  std::string error;
  uintptr_t result = 0;
  if (agent.base == 0) {
    // RTLD_NOW | RTLD_LOCAL: not in the global scope.
    if (!thread.Call(dlopen_fn, {StoppedThread::kDataAddress, RTLD_NOW},
                     library, &result, &error)) {
      thread.Release();
      return Refuse("cannot load the agent into " + std::to_string(pid) + ": " +
                    error);
    }
    if (result == 0) {
      std::string why = "unknown error";
      uintptr_t text = 0;
      if (dlerror_fn != 0 && thread.Call(dlerror_fn, {}, "", &text, &error) &&
          text != 0) {
        why = thread.ReadString(text, 512);
      }
      thread.Release();
      return Refuse("process " + std::to_string(pid) + " could not load " +
                    library + ": " + why + "; nothing was changed");
    }
    maps.clear();
    int err = 0;
    if (!ReadMappings(pid, &maps, &err) ||
        !FindAgent(pid, maps, &agent, library)) {
      thread.Release();
      return Refuse("the agent was loaded but cannot be found in " +
                    std::to_string(pid));
    }
  }
  uintptr_t attach_fn =
      SymbolValue(InRoot(pid, agent.path), "leakwatch_attach");
  if (attach_fn == 0 || agent.state == 0) {
    thread.Release();
    return Refuse(agent.path + " has no leakwatch_attach (an older agent?)");
  }
  if (!thread.Call(agent.base + attach_fn, {StoppedThread::kDataAddress},
                   config, &result, &error)) {
    thread.Release();
    return Refuse("cannot start the agent in " + std::to_string(pid) + ": " +
                  error);
  }
  const pid_t tid = thread.tid();
  const double stopped = thread.Release();
  if (!WaitForAgent(pid, agent, &state, [](const LeakwatchAgentState& s) {
        return s.state != kStateAttaching;
      })) {
    return Refuse("the agent in " + std::to_string(pid) +
                  " did not say it attached");
  }
  if (state.state != kStateAttached) {
    return Refuse("attaching to " + std::to_string(pid) +
                  " failed: " + std::string(state.message));
  }
  std::printf(
      "%s: attached to %d (%s): %u calls redirected in %u modules%s; thread "
      "%d was stopped for %.2f ms, the agent's own thread worked %.2f ms\n",
      kMe, pid, program.c_str(), state.slots, state.modules,
      state.failed_slots > 0
          ? (", " + std::to_string(state.failed_slots) + " could not be")
                .c_str()
          : "",
      tid, stopped * 1000, state.work_ns / 1e6);
  std::fflush(stdout);
  if (for_ms <= 0) return 0;

  signal(SIGINT, [](int) { g_stop = 1; });
  signal(SIGTERM, [](int) { g_stop = 1; });
  const double until = MonotonicSeconds() + for_ms / 1000.0;
  while (!g_stop && MonotonicSeconds() < until && Exists(pid)) usleep(20000);
  if (!Exists(pid)) {
    std::printf("%s: process %d ended\n", kMe, pid);
    return 0;
  }
  int rc = Control(pid, kCommandReport);
  int rc2 = Control(pid, kCommandDetach);
  return rc != 0 ? rc : rc2;
}

}  // namespace
}  // namespace leakwatch

int main(int argc, char** argv) {
  using namespace leakwatch;
  auto usage = [] {
    std::fprintf(stderr,
                 "usage: leakwatch-attach attach PID LIBRARY [FOR_MS] | "
                 "report PID | detach PID\n");
    return 2;
  };
  if (argc < 3) return usage();
  std::string command = argv[1];
  char* end = nullptr;
  long pid = std::strtol(argv[2], &end, 10);
  if (*end != '\0' || pid <= 0) return usage();
  if (!Exists(static_cast<pid_t>(pid))) {
    return Refuse("no process " + std::string(argv[2]));
  }
  if (static_cast<pid_t>(pid) == getpid()) {
    return Refuse("cannot attach to itself");
  }
  if (command == "attach" && (argc == 4 || argc == 5)) {
    long for_ms = argc == 5 ? std::strtol(argv[4], nullptr, 10) : 0;
    return Attach(static_cast<pid_t>(pid), argv[3], for_ms);
  }
  if (command == "report" && argc == 3) {
    return Control(static_cast<pid_t>(pid), kCommandReport);
  }
  if (command == "detach" && argc == 3) {
    return Control(static_cast<pid_t>(pid), kCommandDetach);
  }
  return usage();
}
