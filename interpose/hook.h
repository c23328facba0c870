// What every hook needs: a per-thread nesting counter, errno preservation, and
// the rule for which calls are recorded.
//
// Only the outermost hooked call on a thread is recorded, and only if the
// caller is not the client library itself: libpq calls its own exported
// functions (PQexec -> PQgetResult, PQconnectdb -> PQconnectStart, internal
// PQmakeEmptyPGresult/PQclear) through the PLT, i.e. through our hooks.
//
// Thread safety: all state is thread-local (initial-exec TLS, plain data).
#ifndef LEAKWATCH_INTERPOSE_HOOK_H_
#define LEAKWATCH_INTERPOSE_HOOK_H_

#include <cerrno>

#include "interpose/real.h"
#include "tracker/tracker.h"

#define LW_EXPORT extern "C" __attribute__((visibility("default")))

namespace leakwatch {

extern __attribute__((tls_model("initial-exec"))) __thread int t_hook_depth;

// Counts nesting for the lifetime of a hook call.
class HookScope {
 public:
  // `caller` is __builtin_return_address(0) of the exported hook.
  HookScope(ClientLibrary& library, uint32_t library_bit, const void* caller)
      : outermost_(t_hook_depth++ == 0) {
    record_ = outermost_ && !library.Contains(caller) &&
              Tracker::Get().Tracks(library_bit);
  }
  ~HookScope() { --t_hook_depth; }
  HookScope(const HookScope&) = delete;
  HookScope& operator=(const HookScope&) = delete;

  // True if this call is to be recorded.
  bool record() const { return record_; }

 private:
  bool outermost_;
  bool record_;
};

// Restores errno on scope exit: whatever the tracker does, the program sees
// the errno the real function left.
class ErrnoGuard {
 public:
  ErrnoGuard() : saved_(errno) {}
  ~ErrnoGuard() { errno = saved_; }

 private:
  int saved_;
};

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_HOOK_H_
