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
    record_ = counted_ && t_hook_depth++ == 0 &&
              Tracker::Get().Tracks(library_bit);
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
#define LW_HOOK_ANCHOR()                                      \
  ::leakwatch::HookAnchor(__builtin_frame_address(0),         \
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

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_HOOK_H_
