// What every hook needs: a per-thread nesting counter, errno preservation,
// the rule for which calls are recorded, and the helpers all hooks share.
//
// Only the outermost hooked call on a thread is recorded, and only if the
// caller is not the client library itself: libpq calls its own exported
// functions (PQexec -> PQgetResult, PQconnectdb -> PQconnectStart, internal
// PQmakeEmptyPGresult/PQclear) through the PLT, i.e. through our hooks.
//
// A hook resolves its real function, opens a HookScope, tells the tracker
// through helpers (when the call is recorded), and returns the real result:
//
//   LW_EXPORT void PQreset(PGconn* conn) {
//     LW_HOOK_BEGIN(g_libpq, kLibPg, PQreset, );  // `real` and `scope`
//     if (scope.record()) leakwatch::OnCallStart(conn, "PQreset");
//     real(conn);
//     if (scope.record()) leakwatch::OnIdentityChange(conn);
//   }
//
// or, where the shape repeats, with LW_HOOK and LW_RELEASE_HOOK below.
//
// Thread safety: all state is thread-local (initial-exec TLS, plain data).
#ifndef LEAKWATCH_INTERPOSE_HOOK_H_
#define LEAKWATCH_INTERPOSE_HOOK_H_

#include <pthread.h>

#include <cerrno>
#include <cstdint>

#include "interpose/real.h"
#include "tracker/kinds.h"
#include "tracker/tracker.h"

#define LW_EXPORT extern "C" __attribute__((visibility("default")))

// The program's call site: the return address of the exported hook this is
// expanded in.
#define LW_CALLER __builtin_return_address(0)

// The start of a hook: `real`, the real function `name` (declared as
// leakwatch::real_<name>), and `scope`, the HookScope of this call into the
// ClientLibrary `library`, whose hooks LEAKWATCH_TRACK switches with
// `library_bit`. Without the real function the hook returns `fail` (empty in
// a void function): the library's documented failure.
#define LW_HOOK_BEGIN(library, library_bit, name, fail) \
  auto real = ::leakwatch::real_##name.Get();           \
  if (real == nullptr) return fail;                     \
  ::leakwatch::HookScope scope(library, library_bit, LW_CALLER)

// A hook whose records are made by two helper calls, run only when the call
// is recorded: `before` ahead of the real call, `after` once it returned,
// with `result` its return value (either may be `(void)0`). An acquisition
// in `after` goes through always_inline helpers (see LW_HOOK_ANCHOR).
#define LW_HOOK(library, library_bit, type, name, fail, params, args, before, \
                after)                                                        \
  LW_EXPORT type name params {                                                \
    LW_HOOK_BEGIN(library, library_bit, name, fail);                          \
    if (scope.record()) before;                                               \
    type result = real args;                                                  \
    if (scope.record()) after;                                                \
    return result;                                                            \
  }

// A hook that releases `handle`, a `kind` (a KindDesc*): the record goes
// first, then the real call (see OnRelease).
#define LW_RELEASE_HOOK(library, library_bit, kind, type, name, fail, params, \
                        args, handle)                                         \
  LW_EXPORT type name params {                                                \
    LW_HOOK_BEGIN(library, library_bit, name, fail);                          \
    if (scope.record()) {                                                     \
      ::leakwatch::OnRelease(handle, kind, #name, scope.caller());            \
    }                                                                         \
    return real args;                                                         \
  }

namespace leakwatch {

extern __attribute__((tls_model("initial-exec"))) __thread int t_hook_depth;

// Counts nesting for the lifetime of a hook call.
//
// A call the library makes to itself is passed through without touching the
// nesting count: MariaDB's non-blocking API runs the blocking function on a
// coroutine stack that is switched away from in the middle of the call, so a
// count taken there would stay raised on this thread until the operation
// completes, and every hook of the thread would be ignored meanwhile.
class HookScope {
 public:
  // `caller` is __builtin_return_address(0) of the exported hook. The
  // library's code range must be known (resolve the real function first).
  HookScope(ClientLibrary& library, uint32_t library_bit, const void* caller)
      : caller_(caller), counted_(!library.Contains(caller)) {
    record_ =
        counted_ && t_hook_depth++ == 0 && Tracker::Get().Tracks(library_bit);
  }
  ~HookScope() {
    if (counted_) --t_hook_depth;
  }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;

  // True if this call is to be recorded.
  bool record() const { return record_; }
  // The program's call site: the hooked call's return address.
  const void* caller() const { return caller_; }

 private:
  const void* caller_;
  bool counted_;
  bool record_;
};

// The address of the stack slot that holds the return address of the
// exported hook this is expanded in (directly, or in an always_inline helper
// inlined into it): the anchor of Tracker::CaptureStackIdAt. 0 if the slot
// does not hold the return address (an unexpected frame layout).
#define LW_HOOK_ANCHOR()                              \
  ::leakwatch::HookAnchor(__builtin_frame_address(0), \
                          __builtin_return_address(0))

inline uintptr_t HookAnchor(const void* frame, const void* return_address) {
  // With the frame pointer that __builtin_frame_address forces: the saved
  // frame pointer at `frame`, the return address just above it.
  uintptr_t slot = reinterpret_cast<uintptr_t>(frame) + sizeof(void*);
  return *reinterpret_cast<void* const*>(slot) == return_address ? slot : 0;
}

// Restores errno on scope exit: whatever the tracker does, the program sees
// the errno the real function left.
class ErrnoGuard {
 public:
  ErrnoGuard() : saved_(errno) {}
  ~ErrnoGuard() { errno = saved_; }

 private:
  int saved_;
};

// The tracker's key for a handle: its address; for a thread, its pthread_t
// (thrd_t is the same type in glibc).
inline uintptr_t Key(const void* handle) {
  return reinterpret_cast<uintptr_t>(handle);
}
inline uintptr_t Key(pthread_t thread) {
  return static_cast<uintptr_t>(thread);
}

// Before the real release of `handle` (null: nothing to do), a `kind`, by
// the hooked function `function` called from `caller`: the record goes with
// the release stack. A release of a handle released recently is reported as
// a misuse now, before the real call, which may abort the process. Errno is
// preserved.
// Inline for the common case (Tracker::ReleaseYoung), which leaves errno
// alone; OnReleaseSlow otherwise.
// (`release_stack`: the one Tracker::ReleaseYoung captured, or
// Tracker::kStackNotCaptured.)
void OnReleaseSlow(const void* handle, const KindDesc* kind,
                   const char* function, const void* caller,
                   uint32_t release_stack);
__attribute__((always_inline)) inline void OnRelease(const void* handle,
                                                     const KindDesc* kind,
                                                     const char* function,
                                                     const void* caller) {
  if (handle == nullptr) return;
  uint32_t release_stack = Tracker::kStackNotCaptured;
  if (Tracker::Get().ReleaseYoung(Key(handle), caller, &release_stack)) return;
  OnReleaseSlow(handle, kind, function, caller, release_stack);
}

// Gives the tracker its test for a script interpreter's shutdown
// (interpose/interpreter.cc; Tracker::SetShutdownProbe).
void InstallInterpreterShutdownProbe();

// Creates the report module if it is not yet (interpose/agent.cc): for a
// notice from a hook that may run before the agent's constructor.
void AttachReporter();

// A `leakwatch attach` session begins (interpose/agent.cc): the report module
// is made again with the tracker's options now in force (another log, format,
// suppressions), or made for the first time.
void RestartReporter();

// A `leakwatch attach` session begins (interpose/agent.cc): the real exit()
// is resolved now, not from a signal handler that calls exit() later.
void PrepareExitPoint();

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_HOOK_H_
