#include "interpose/attach.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "interpose/bind.h"
#include "interpose/hook.h"
#include "report/log.h"
#include "tracker/clock.h"
#include "tracker/options.h"
#include "tracker/tracker.h"

extern "C" {
__attribute__((visibility("default")))
LeakwatchAgentState leakwatch_agent_state = {};
}

namespace leakwatch {

std::atomic<bool> g_agent_inert{false};

namespace {

LeakwatchAgentState& State() { return leakwatch_agent_state; }

void SetState(AttachState state) {
  __atomic_store_n(&State().state, state, __ATOMIC_RELEASE);
}

void Fail(const std::string& why) {
  std::strncpy(State().message, why.c_str(), sizeof State().message - 1);
  SetState(kStateFailed);
}

// --- the modules and their redirected slots ----------------------------------

// A module the passes know: by its dynamic section and load bias. `complete`:
// known to be fully loaded (relocated, its RELRO protected), so its slots
// may be written.
struct KnownModule {
  const ElfDyn* dynamic;
  uintptr_t bias;
  bool complete;
  bool present;  // seen by the current pass
};
constexpr size_t kMaxModules = 4096;
KnownModule g_modules[kMaxModules];
size_t g_module_count = 0;

// A slot pointed at a hook, and what it held before.
struct SavedSlot {
  void** slot;
  void* original;
  void* hook;
  const ElfDyn* dynamic;  // its module's
};
constexpr size_t kMaxSaved = 65536;
SavedSlot g_saved[kMaxSaved];
size_t g_saved_count = 0;

// Guards the lists above; a pass holds it while it runs.
pthread_mutex_t g_pass_mu = PTHREAD_MUTEX_INITIALIZER;
// dl_iterate_phdr's counters at the last pass (a new module changes them).
unsigned long long g_last_adds = 0, g_last_subs = 0;
bool g_pending = false;  // a module waits for its next pass

KnownModule* FindModule(const LoadedObject& object) {
  for (size_t i = 0; i < g_module_count; ++i) {
    if (g_modules[i].dynamic == object.dynamic &&
        g_modules[i].bias == object.bias) {
      return &g_modules[i];
    }
  }
  return nullptr;
}

struct PassCounts {
  int rewritten = 0;
  int failed = 0;
};

// One pass over the loaded modules (the loader's list lock held by
// dl_iterate_phdr, so none is unmapped meanwhile): the complete ones get
// their slots redirected; a module seen for the first time is complete if
// its dynamic section is `loaded` (a dlopen of it returned), else it waits
// for the next pass.
void RedirectPass(const void* loaded, PassCounts* counts) {
  for (size_t i = 0; i < g_module_count; ++i) g_modules[i].present = false;
  struct Arg {
    const void* loaded;
    PassCounts* counts;
  } arg{loaded, counts};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* a = static_cast<Arg*>(data);
        g_last_adds = info->dlpi_adds;
        g_last_subs = info->dlpi_subs;
        LoadedObject object = elf_image_internal::FromPhdrInfo(*info);
        if (object.dynamic == nullptr || IsAgentObject(object)) return 0;
        KnownModule* known = FindModule(object);
        if (known == nullptr) {
          if (g_module_count == kMaxModules) return 0;
          known = &g_modules[g_module_count++];
          const bool complete = object.dynamic == a->loaded;
          *known = {object.dynamic, object.bias, complete, false};
          if (!complete) g_pending = true;
        } else if (!known->complete) {
          known->complete = true;  // seen a pass ago: its load is over
        }
        known->present = true;
        if (!known->complete) return 0;
        a->counts->rewritten += RewriteImportSlots(
            object, &a->counts->failed,
            [](void** slot, void* original, void* hook, void* d) {
              if (g_saved_count == kMaxSaved) return false;
              g_saved[g_saved_count++] = {slot, original, hook,
                                          static_cast<const ElfDyn*>(d)};
              return true;
            },
            const_cast<ElfDyn*>(object.dynamic));
        return 0;
      },
      &arg);
  // Modules unloaded since: forgotten, with their slots.
  size_t kept = 0;
  for (size_t i = 0; i < g_module_count; ++i) {
    if (g_modules[i].present) g_modules[kept++] = g_modules[i];
  }
  g_module_count = kept;
  kept = 0;
  for (size_t i = 0; i < g_saved_count; ++i) {
    bool present = false;
    for (size_t m = 0; m < g_module_count && !present; ++m) {
      present = g_modules[m].dynamic == g_saved[i].dynamic;
    }
    if (present) g_saved[kept++] = g_saved[i];
  }
  g_saved_count = kept;
}

void CountModules() {
  uint32_t modules = 0;
  for (size_t m = 0; m < g_module_count; ++m) {
    for (size_t i = 0; i < g_saved_count; ++i) {
      if (g_saved[i].dynamic == g_modules[m].dynamic) {
        ++modules;
        break;
      }
    }
  }
  State().modules = modules;
  State().slots = static_cast<uint32_t>(g_saved_count);
}

// Writes every saved slot back, in the modules still loaded, where it still
// holds the hook (a module's own later binding is left as it is).
int RestorePass() {
  struct Arg {
    int failed = 0;
  } arg;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* a = static_cast<Arg*>(data);
        LoadedObject object = elf_image_internal::FromPhdrInfo(*info);
        if (object.dynamic == nullptr) return 0;
        for (size_t i = 0; i < g_saved_count; ++i) {
          SavedSlot& s = g_saved[i];
          if (s.dynamic != object.dynamic) continue;
          if (__atomic_load_n(s.slot, __ATOMIC_RELAXED) != s.hook) continue;
          if (!WriteImportSlot(s.slot, s.original, object.bias, object.phdr,
                               object.phnum)) {
            ++a->failed;
          }
        }
        return 0;
      },
      &arg);
  g_saved_count = 0;
  return arg.failed;
}

// --- requests ------------------------------------------------------------

// The options of the attach being made: "NAME=VALUE" lines.
constexpr size_t kMaxConfig = 16384;
char g_config[kMaxConfig];

// The options in g_config: each "NAME=VALUE" line.
Options ParseConfig() {
  std::vector<std::pair<std::string, std::string>> values;
  for (const char* line = g_config; *line != '\0';) {
    const char* end = std::strchr(line, '\n');
    if (end == nullptr) end = line + std::strlen(line);
    const char* eq =
        static_cast<const char*>(std::memchr(line, '=', end - line));
    if (eq != nullptr) {
      values.emplace_back(std::string(line, eq), std::string(eq + 1, end));
    }
    line = *end == '\n' ? end + 1 : end;
  }
  std::vector<std::string> errors;  // the command said them already
  return ParseOptions(
      [&values](const char* name) -> const char* {
        for (const auto& [n, v] : values) {
          if (n == name) return v.c_str();
        }
        return nullptr;
      },
      &errors);
}

uint64_t MonotonicNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000u + t.tv_nsec;
}

// Reports on demand being written (ReportWork): the report module they use
// must not be made again under them.
std::atomic<int> g_reports_running{0};

void* AttachWork(void*) {
  ++t_hook_depth;  // nothing here is the program's
  const uint64_t start = MonotonicNs();
  for (int i = 0; i < 10000 && g_reports_running.load() != 0; ++i) {
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, nullptr);
  }
  Options options = ParseConfig();
  Tracker::UseOptions(options);
  Tracker& tracker = Tracker::Get();
  tracker.SetScanHook([] { RedirectNewModules(nullptr); });
  PrepareExitPoint();
  // The report module is made with the session's options before anything is
  // tracked.
  tracker.BeginSession(options, &RestartReporter);
  g_agent_inert.store(false, std::memory_order_release);
  pthread_mutex_lock(&g_pass_mu);
  PassCounts counts;
  RedirectPass(/*loaded=*/nullptr, &counts);
  CountModules();
  State().failed_slots = static_cast<uint32_t>(counts.failed);
  pthread_mutex_unlock(&g_pass_mu);
  ++State().sessions;
  State().work_ns = MonotonicNs() - start;
  SetState(kStateAttached);
  --t_hook_depth;
  return nullptr;
}

void* DetachWork(void*) {
  ++t_hook_depth;
  const uint64_t start = MonotonicNs();
  g_agent_inert.store(true, std::memory_order_release);
  Tracker& tracker = Tracker::Get();
  bool stopped = tracker.EndSession(10000);
  // As at exit: a metrics file of a process no longer watched goes.
  if (!tracker.options().metrics.empty()) {
    unlink(Log::ExpandPath(tracker.options().metrics, getpid()).c_str());
  }
  pthread_mutex_lock(&g_pass_mu);
  State().detach_failed = static_cast<uint32_t>(RestorePass());
  CountModules();
  pthread_mutex_unlock(&g_pass_mu);
  State().work_ns = MonotonicNs() - start;
  if (!stopped) {
    Fail("the watchdog did not stop within 10 s; the agent is inert");
  } else {
    SetState(kStateDetached);
  }
  --t_hook_depth;
  return nullptr;
}

void* ReportWork(void*) {
  ++t_hook_depth;
  Tracker::Get().DemandReport();
  __atomic_add_fetch(&State().reports, 1, __ATOMIC_RELEASE);
  g_reports_running.fetch_sub(1);
  --t_hook_depth;
  return nullptr;
}

// Runs `work` on a thread of the agent's own (untracked).
bool RunOnAgentThread(void* (*work)(void*)) {
  pthread_t thread;
  ++t_hook_depth;
  bool ok = StartAgentThread(&thread, work, nullptr);
  --t_hook_depth;
  return ok;
}

// Moves the state from any of `from` to `to`; false if it was in none.
bool ClaimState(std::initializer_list<AttachState> from, AttachState to) {
  for (uint32_t state : from) {
    if (__atomic_compare_exchange_n(&State().state, &state, to, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool StartedByAttach() {
  State().version = kAgentStateVersion;
  // Preloaded (or loaded into the global scope otherwise), the program's
  // own handle finds our symbols; loaded privately by the attaching
  // command, it does not.
  // (The program's handle needs no dlclose.)
  void* program = dlopen(nullptr, RTLD_LAZY | RTLD_NOLOAD);
  bool global =
      program != nullptr && RealDlsym(program, "leakwatch_agent_state") ==
                                static_cast<void*>(&leakwatch_agent_state);
  if (global) {
    State().mode = kModePreloaded;
    __atomic_store_n(&State().magic, kAgentStateMagic, __ATOMIC_RELEASE);
    return false;
  }
  State().mode = kModeAttached;
  g_agent_inert.store(true, std::memory_order_release);
  // A child forked during a pass must not inherit the lock held.
  pthread_atfork([] { pthread_mutex_lock(&g_pass_mu); },
                 [] { pthread_mutex_unlock(&g_pass_mu); },
                 [] { pthread_mutex_unlock(&g_pass_mu); });
  // The loader's lock is held while our constructor runs: every module
  // loaded now is complete.
  LoadedObject probe;
  IsAgentObject(probe);  // finds ourselves now, not from inside the pass
  pthread_mutex_lock(&g_pass_mu);
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) -> int {
        LoadedObject object = elf_image_internal::FromPhdrInfo(*info);
        if (object.dynamic != nullptr && g_module_count < kMaxModules) {
          g_modules[g_module_count++] = {object.dynamic, object.bias, true,
                                         true};
        }
        return 0;
      },
      nullptr);
  pthread_mutex_unlock(&g_pass_mu);
  __atomic_store_n(&State().magic, kAgentStateMagic, __ATOMIC_RELEASE);
  return true;
}

bool LoadedByAttach() { return State().mode == kModeAttached; }

void RedirectNewModules(const void* loaded) {
  const bool complete = loaded != nullptr;
  if (AgentInert() || State().mode != kModeAttached) return;
  if (pthread_mutex_trylock(&g_pass_mu) != 0) {
    if (!complete) return;  // the next scan looks again
    pthread_mutex_lock(&g_pass_mu);
  }
  if (AgentInert()) {  // a detach came first
    pthread_mutex_unlock(&g_pass_mu);
    return;
  }
  // Nothing loaded or unloaded since the last pass, nothing waiting: done.
  unsigned long long adds = 0, subs = 0;
  struct Counters {
    unsigned long long* adds;
    unsigned long long* subs;
  } counters{&adds, &subs};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* c = static_cast<Counters*>(data);
        *c->adds = info->dlpi_adds;
        *c->subs = info->dlpi_subs;
        return 1;
      },
      &counters);
  if (complete || g_pending || adds != g_last_adds || subs != g_last_subs) {
    g_pending = false;
    PassCounts counts;
    RedirectPass(loaded, &counts);
    CountModules();
    State().failed_slots += static_cast<uint32_t>(counts.failed);
  }
  pthread_mutex_unlock(&g_pass_mu);
}

}  // namespace leakwatch

// Begins a session with the options in `config` ("NAME=VALUE" lines, the
// LEAKWATCH_* variables), on a thread of the agent's own; returns at once.
// The command reads leakwatch_agent_state for the outcome.
LW_EXPORT LeakwatchAgentState* leakwatch_attach(const char* config) {
  using namespace leakwatch;
  ErrnoGuard errno_guard;
  if (State().mode != kModeAttached) return &State();
  if (!ClaimState({kStateInert, kStateDetached, kStateFailed},
                  kStateAttaching)) {
    return &State();
  }
  size_t len = config != nullptr ? std::strlen(config) : 0;
  if (len >= kMaxConfig) {
    Fail("the options are too long");
    return &State();
  }
  std::memcpy(g_config, config != nullptr ? config : "", len + 1);
  State().message[0] = '\0';
  if (!RunOnAgentThread(&AttachWork)) Fail("cannot start a thread");
  return &State();
}

// `leakwatch report` (kCommandReport) and `leakwatch detach`
// (kCommandDetach), on a thread of the agent's own; returns at once.
LW_EXPORT LeakwatchAgentState* leakwatch_control(int command) {
  using namespace leakwatch;
  ErrnoGuard errno_guard;
  if (State().mode != kModeAttached ||
      __atomic_load_n(&State().state, __ATOMIC_ACQUIRE) != kStateAttached) {
    return &State();
  }
  if (command == kCommandReport) {
    g_reports_running.fetch_add(1);
    if (!RunOnAgentThread(&ReportWork)) {
      g_reports_running.fetch_sub(1);
      Fail("cannot start a thread");
    }
  } else if (command == kCommandDetach) {
    if (ClaimState({kStateAttached}, kStateDetaching) &&
        !RunOnAgentThread(&DetachWork)) {
      Fail("cannot start a thread");
    }
  }
  return &State();
}
