// Knowing when a script's interpreter has begun to shut down.
//
// Python, Perl and Ruby free whatever a script still holds while the
// interpreter shuts down, after the script's main program is over: the
// drivers' objects die and close their handles. Those releases are the
// interpreter's, not the script's (Tracker::BeginInterpreterShutdown). The
// probe below tells them apart, with no change to the script:
//   - Python: Py_IsFinalizing() (3.13; _Py_IsFinalizing() before) is true from
//     the start of the finalization proper: after the atexit handlers and the
//     wait for non-daemon threads, which are the program's own code, and
//     before the modules (and the script's globals) are torn down.
//   - Perl: the release is made on the main thread inside perl_destruct (END
//     blocks, where DBI disconnects every handle, then global destruction)
//     or inside exit (pp_exit, my_exit, my_failure_exit: the script's exit or
//     its uncaught die). A release made as the main program's last scope is
//     left (perl_run -> runops -> pp_leave, frees the file-scope `my`
//     variables) is the interpreter's if the script does nothing after it
//     (Tracker::kShutdownIfLast): a bare top-level block's end looks the
//     same from C.
//   - Ruby: the release is made on the main thread inside ruby_run_node with
//     no Ruby code running (no rb_vm_exec frame): the finalizers at exit,
//     after the at_exit procs.
//   - PHP: the main thread is inside php_request_shutdown (shutdown
//     functions, destructors, then the request's resources): PHP closes a
//     request's links at its end by design, so a release there is a release
//     (Tracker::kEndOfRequest), but the calls made on the way are not use.
// The interpreter is recognised once, as the agent starts, by the symbols
// its executable or library exports; only then is the probe installed (the
// tracker takes it to mean the program is a script interpreter). A program
// that is none of them (an interpreter embedded later with dlopen included)
// has no probe: one load per release.
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "interpose/bind.h"
#include "interpose/script.h"
#include "tracker/elf_image.h"
#include "tracker/stack.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

enum Interpreter : int { kNone, kPython, kPerl, kRuby, kPhp };

struct CodeRange {
  std::atomic<uintptr_t> lo{0}, hi{0};
  bool Contains(uintptr_t pc) const {
    return pc >= lo.load(std::memory_order_relaxed) &&
           pc < hi.load(std::memory_order_relaxed);
  }
};

std::atomic<int> g_interpreter{kNone};
std::atomic<int (*)()> g_py_is_finalizing{nullptr};
// Functions inside which a release is the interpreter's: perl_destruct and
// Perl's exits, ruby_run_node (outside Ruby code), php_request_shutdown.
CodeRange g_shutdown_fns[4];
CodeRange g_ruby_vm_exec;  // Ruby code is running
// Perl's main program leaving its last scope: perl_run -> runops -> pp_leave.
CodeRange g_perl_run, g_perl_runops[2], g_perl_pp_leave;

bool FunctionRange(const char* name, CodeRange* range) {
  uintptr_t lo = 0, hi = 0;
  if (!ExportedFunctionRange(name, &lo, &hi)) return false;
  range->lo.store(lo, std::memory_order_relaxed);
  range->hi.store(hi, std::memory_order_relaxed);
  return true;
}

Interpreter Recognise() {
  for (const char* name : {"Py_IsFinalizing", "_Py_IsFinalizing"}) {
    if (void* p = RealDlsym(RTLD_DEFAULT, name)) {
      g_py_is_finalizing.store(reinterpret_cast<int (*)()>(p),
                               std::memory_order_relaxed);
      return kPython;
    }
  }
  if (FunctionRange("perl_destruct", &g_shutdown_fns[0])) {
    FunctionRange("Perl_pp_exit", &g_shutdown_fns[1]);
    FunctionRange("Perl_my_exit", &g_shutdown_fns[2]);
    FunctionRange("Perl_my_failure_exit", &g_shutdown_fns[3]);
    FunctionRange("perl_run", &g_perl_run);
    FunctionRange("Perl_runops_standard", &g_perl_runops[0]);
    FunctionRange("Perl_runops_debug", &g_perl_runops[1]);
    FunctionRange("Perl_pp_leave", &g_perl_pp_leave);
    return kPerl;
  }
  if (FunctionRange("ruby_run_node", &g_shutdown_fns[0]) &&
      FunctionRange("rb_vm_exec", &g_ruby_vm_exec)) {
    return kRuby;
  }
  if (FunctionRange("php_request_shutdown", &g_shutdown_fns[0])) return kPhp;
  return kNone;
}

bool InShutdownFunction(uintptr_t pc) {
  for (const CodeRange& range : g_shutdown_fns) {
    if (range.Contains(pc)) return true;
  }
  return false;
}

// What the calling thread's stack (its innermost frames) says: inside a
// shutdown function (for Ruby, with no Ruby code running inside it), or for
// Perl leaving the main program's last scope.
Tracker::ShutdownVerdict StackVerdict(Interpreter interpreter) {
  if (Tracker::CurrentTid() != static_cast<uint32_t>(getpid())) {
    return Tracker::kNotShutdown;
  }
  uintptr_t frames[kMaxFrames];
  int n = CaptureStack(frames, kMaxFrames);
  for (int i = 0; i < n; ++i) {
    if (interpreter == kRuby && g_ruby_vm_exec.Contains(frames[i])) break;
    if (InShutdownFunction(frames[i])) return Tracker::kShutdown;
    if (interpreter == kPerl && i >= 2 && g_perl_run.Contains(frames[i])) {
      const bool runops = g_perl_runops[0].Contains(frames[i - 1]) ||
                          g_perl_runops[1].Contains(frames[i - 1]);
      return runops && g_perl_pp_leave.Contains(frames[i - 2])
                 ? Tracker::kShutdownIfLast
                 : Tracker::kNotShutdown;
    }
  }
  return Tracker::kNotShutdown;
}

Tracker::ShutdownVerdict InterpreterShutdownProbe() {
  const int interpreter = g_interpreter.load(std::memory_order_relaxed);
  switch (interpreter) {
    case kPython: {
      int (*finalizing)() = g_py_is_finalizing.load(std::memory_order_relaxed);
      return finalizing != nullptr && finalizing() != 0 ? Tracker::kShutdown
                                                        : Tracker::kNotShutdown;
    }
    case kPerl:
    case kRuby:
      return StackVerdict(static_cast<Interpreter>(interpreter));
    case kPhp:
      return StackVerdict(kPhp) == Tracker::kShutdown ? Tracker::kEndOfRequest
                                                      : Tracker::kNotShutdown;
    default:
      return Tracker::kNotShutdown;
  }
}

ScriptReader g_script_reader;

// The reader of the interpreter's frames, if its version is one it reads;
// else the one line saying the stacks stay native.
void InstallScriptReader(Interpreter interpreter) {
  bool (*init)(ScriptReader*, std::string*) = nullptr;
  switch (interpreter) {
    case kPython:
      init = &InitPythonReader;
      break;
    case kPerl:
      init = &InitPerlReader;
      break;
    case kRuby:
      init = &InitRubyReader;
      break;
    case kPhp:
      init = &InitPhpReader;
      break;
    default:
      return;
  }
  std::string why_not;
  if (init(&g_script_reader, &why_not)) {
    Tracker::Get().SetScriptReader(&g_script_reader);
  } else if (!why_not.empty()) {
    Tracker::Get().Notice("script-frames", why_not);
  }
}

}  // namespace

bool ExportedFunctionRange(const char* name, uintptr_t* lo, uintptr_t* hi) {
  void* p = RealDlsym(RTLD_DEFAULT, name);
  LoadedObject object;
  uintptr_t l = 0, h = 0;
  if (p == nullptr || !FindLoadedObject(p, &object) ||
      !ElfImage(object).LookupRange(name, &l, &h) || h <= l) {
    return false;
  }
  *lo = l;
  *hi = h;
  return true;
}

void InstallInterpreterShutdownProbe() {
  const Interpreter interpreter = Recognise();
  g_interpreter.store(interpreter, std::memory_order_release);
  if (interpreter != kNone) {
    Tracker::Get().SetShutdownProbe(&InterpreterShutdownProbe);
    if (Tracker::Get().options().stack_depth > 0 &&
        Tracker::Get().options().script_stacks) {
      InstallScriptReader(interpreter);
    }
  }
}

}  // namespace leakwatch
