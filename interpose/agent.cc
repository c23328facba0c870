// Agent start and stop: wires the tracker to the report module and writes the
// exit report from the ELF destructor.
//
// Hooks can run before our constructor (a DT_NEEDED library's constructors run
// first) and after our destructor (its destructors run after ours), so nothing
// here is required for a hook to work: the tracker initialises itself on
// first use, and the report module is attached lazily too.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <new>

#include "interpose/attach.h"
#include "interpose/hook.h"
#include "interpose/real.h"
#include "report/log.h"
#include "report/reporter.h"
#include "tracker/stack.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

alignas(Log) unsigned char g_log_storage[sizeof(Log)];
alignas(Reporter) unsigned char g_reporter_storage[sizeof(Reporter)];
Reporter* g_reporter = nullptr;
pthread_once_t g_attach_once = PTHREAD_ONCE_INIT;

// Creates the report module and registers it with the tracker; both live for
// the rest of the process.
void Attach() {
  pthread_once(&g_attach_once, [] {
    Tracker& tracker = Tracker::Get();
    SkipFramesInModuleOf(reinterpret_cast<const void*>(&Attach));
    Log* log = new (g_log_storage) Log(tracker.options().log);
    g_reporter = new (g_reporter_storage) Reporter(tracker, *log);
    tracker.SetSink(g_reporter);
    InstallInterpreterShutdownProbe();
  });
}

}  // namespace

void AttachReporter() { Attach(); }

void RestartReporter() {
  Tracker& tracker = Tracker::Get();
  if (g_reporter == nullptr) {
    Attach();
    return;
  }
  // Between sessions nothing reports: the old module can go.
  tracker.SetSink(nullptr);
  auto* log = reinterpret_cast<Log*>(g_log_storage);
  g_reporter->~Reporter();
  log->~Log();
  log = new (g_log_storage) Log(tracker.options().log);
  g_reporter = new (g_reporter_storage) Reporter(tracker, *log);
  tracker.SetSink(g_reporter);
}

namespace {

__attribute__((constructor)) void AgentStart() {
  ++t_hook_depth;  // nothing we do here is the program's call
  ErrnoGuard errno_guard;
  // Loaded by `leakwatch attach`: nothing starts before leakwatch_attach.
  if (!StartedByAttach()) Attach();
  --t_hook_depth;
}

__attribute__((destructor)) void AgentStop() {
  // Loaded by `leakwatch attach` and not attached now: inert, no report.
  if (AgentInert()) return;
  ++t_hook_depth;
  ErrnoGuard errno_guard;
  Attach();
  Tracker& tracker = Tracker::Get();
  tracker.Exit();
  int code = tracker.options().exitcode;
  if (code != 0 &&
      (g_reporter->unsuppressed_at_exit() > 0 || tracker.misuse_count() > 0)) {
    // The program's status becomes ours: a CI gate. Its buffered output is
    // written first; the remaining destructors are skipped, as LeakSanitizer
    // does.
    fflush(nullptr);
    _exit(code);
  }
  --t_hook_depth;
}

// The program's main, behind StartMain.
using MainFn = int (*)(int, char**, char**);
MainFn g_main = nullptr;

// glibc declares no __libc_start_main.
using StartMainFn = int (*)(MainFn, int, char**, void (*)(), void (*)(),
                            void (*)(), void*);
LW_DECLARE_REAL(g_libc, exit);
LW_DECLARE_REAL(g_libc, __libc_start_main, StartMainFn);

// main's return is an exit point: the reachability of what is still held is
// decided before exit() runs the static destructors that free the containers
// a program keeps its handles in. Registered as main starts, after every
// constructor registered its destructor, it runs first.
void ExitPointAtExit() {
  ++t_hook_depth;
  {
    ErrnoGuard errno_guard;
    // If exit() came first, ExitPoint already ran (and this does nothing).
    Tracker::Get().ExitPoint(/*main_returned=*/true);
  }
  --t_hook_depth;
}

// Registers ExitPointAtExit, then jumps to main (a sibling call: no frame of
// ours stays below main in the program's stacks).
int StartMain(int argc, char** argv, char** envp) {
  atexit(&ExitPointAtExit);
  return g_main(argc, argv, envp);
}

}  // namespace
}  // namespace leakwatch

namespace leakwatch {
void PrepareExitPoint() { real_exit.Get(); }
}  // namespace leakwatch

// exit() is an exit point too (the program's own call; libc's internal ones,
// as after main returns, do not come here).
LW_EXPORT void exit(int status) noexcept {
  // Resolved as the program started (__libc_start_main below): exit() may
  // come from a signal handler, where resolving would not be safe.
  auto real = leakwatch::real_exit.Get();
  if (leakwatch::t_hook_depth == 0 && !leakwatch::AgentInert()) {
    ++leakwatch::t_hook_depth;
    {
      leakwatch::ErrnoGuard errno_guard;
      leakwatch::Tracker::Get().ExitPoint();
    }
    --leakwatch::t_hook_depth;
  }
  if (real == nullptr) _exit(status);  // cannot happen with glibc
  real(status);
  __builtin_unreachable();
}

// The program's start: main is wrapped so that its return is seen.
LW_EXPORT int __libc_start_main(leakwatch::MainFn main, int argc, char** argv,
                                void (*init)(), void (*fini)(),
                                void (*rtld_fini)(), void* stack_end) {
  auto real = leakwatch::real___libc_start_main.Get();
  leakwatch::real_exit.Get();
  leakwatch::g_main = main;
  return real(&leakwatch::StartMain, argc, argv, init, fini, rtld_fini,
              stack_end);
}

// In-program annotation (include/leakwatch.h): the program keeps `handle` on
// purpose. Returns 1 if leakwatch tracks it, 0 if not.
LW_EXPORT int leakwatch_ignore(const void* handle) {
  leakwatch::ErrnoGuard errno_guard;
  return leakwatch::Tracker::Get().Ignore(reinterpret_cast<uintptr_t>(handle))
             ? 1
             : 0;
}
