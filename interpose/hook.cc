#include "interpose/hook.h"

namespace leakwatch {

__attribute__((tls_model("initial-exec"))) __thread int t_hook_depth = 0;

void OnReleaseSlow(const void* handle, const KindDesc* kind,
                   const char* function, const void* caller) {
  ErrnoGuard errno_guard;
  Tracker& tracker = Tracker::Get();
  const bool tentative =
      tracker.ProbeInterpreterShutdown() == Tracker::kShutdownIfLast;
  if (!tracker.Release(Key(handle), tracker.CaptureReleaseStack(caller),
                       tentative)) {
    tracker.CheckReleaseMisuse(Key(handle), kind, function);
  }
}

}  // namespace leakwatch
