#include "interpose/hook.h"

namespace leakwatch {

__attribute__((tls_model("initial-exec"))) __thread int t_hook_depth = 0;

void OnReleaseSlow(const void* handle, const KindDesc* kind,
                   const char* function, const void* caller,
                   uint32_t release_stack) {
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  const bool tentative =
      tracker.ProbeInterpreterShutdown() == Tracker::kShutdownIfLast;
  if (release_stack == Tracker::kStackNotCaptured) {
    release_stack = tracker.CaptureReleaseStack(caller);
  }
  if (!tracker.Release(Key(handle), release_stack, tentative)) {
    tracker.CheckReleaseMisuse(Key(handle), kind, function);
  }
}

}  // namespace leakwatch
