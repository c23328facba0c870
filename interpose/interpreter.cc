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
//   - Perl: the release is made on the main thread inside perl_destruct: END
//     blocks (DBI's disconnects every handle there), then global destruction.
//   - Ruby: the release is made on the main thread inside ruby_run_node with
//     no Ruby code running (no rb_vm_exec frame): the finalizers at exit,
//     after the at_exit procs.
//   - PHP: the release is made on the main thread inside
//     php_request_shutdown: shutdown functions, destructors, then the
//     request's resources (a script's unclosed links and results).
// The interpreter is recognised once, at the first probe, by the symbols it
// exports; a program that is none of them pays one relaxed load per probe.
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "tracker/stack.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

enum Interpreter : int { kUnknown, kNone, kPython, kPerl, kRuby, kPhp };

struct CodeRange {
  std::atomic<uintptr_t> lo{0}, hi{0};
  bool Contains(uintptr_t pc) const {
    return pc >= lo.load(std::memory_order_relaxed) &&
           pc < hi.load(std::memory_order_relaxed);
  }
};

std::atomic<int> g_interpreter{kUnknown};
std::atomic<int (*)()> g_py_is_finalizing{nullptr};
CodeRange g_shutdown_fn;  // perl_destruct, ruby_run_node, php_request_shutdown
CodeRange g_running_fn;   // rb_vm_exec: Ruby code is running

// The code of the exported function `name`, from its symbol's size.
bool FunctionRange(const char* name, CodeRange* range) {
  void* p = dlsym(RTLD_DEFAULT, name);
  if (p == nullptr) return false;
  Dl_info info;
  void* entry = nullptr;  // the symbol's ElfW(Sym)
  if (dladdr1(p, &info, &entry, RTLD_DL_SYMENT) == 0 ||
      entry == nullptr) {
    return false;
  }
  const auto* sym = static_cast<const ElfW(Sym)*>(entry);
  if (sym->st_size == 0) return false;
  uintptr_t lo = reinterpret_cast<uintptr_t>(p);
  range->lo.store(lo, std::memory_order_relaxed);
  range->hi.store(lo + sym->st_size, std::memory_order_relaxed);
  return true;
}

Interpreter Recognise() {
  for (const char* name : {"Py_IsFinalizing", "_Py_IsFinalizing"}) {
    if (void* p = dlsym(RTLD_DEFAULT, name)) {
      g_py_is_finalizing.store(reinterpret_cast<int (*)()>(p),
                               std::memory_order_relaxed);
      return kPython;
    }
  }
  if (FunctionRange("perl_destruct", &g_shutdown_fn)) return kPerl;
  if (FunctionRange("ruby_run_node", &g_shutdown_fn) &&
      FunctionRange("rb_vm_exec", &g_running_fn)) {
    return kRuby;
  }
  if (FunctionRange("php_request_shutdown", &g_shutdown_fn)) return kPhp;
  return kNone;
}

// True if the calling thread's stack (its innermost frames) runs inside the
// shutdown function and, for Ruby, outside any Ruby code.
bool StackInShutdown(bool ruby) {
  if (Tracker::CurrentTid() != static_cast<uint32_t>(getpid())) return false;
  uintptr_t frames[kMaxFrames];
  int n = CaptureStack(frames, kMaxFrames);
  for (int i = 0; i < n; ++i) {
    if (ruby && g_running_fn.Contains(frames[i])) return false;
    if (g_shutdown_fn.Contains(frames[i])) return true;
  }
  return false;
}

bool InterpreterShutdownProbe() {
  int interpreter = g_interpreter.load(std::memory_order_acquire);
  if (interpreter == kUnknown) {
    interpreter = Recognise();
    g_interpreter.store(interpreter, std::memory_order_release);
  }
  switch (interpreter) {
    case kPython: {
      int (*finalizing)() =
          g_py_is_finalizing.load(std::memory_order_relaxed);
      return finalizing != nullptr && finalizing() != 0;
    }
    case kPerl:
    case kPhp:
      return StackInShutdown(false);
    case kRuby:
      return StackInShutdown(true);
    default:
      return false;
  }
}

}  // namespace

void InstallInterpreterShutdownProbe() {
  Tracker::Get().SetShutdownProbe(&InterpreterShutdownProbe);
}

}  // namespace leakwatch
