// Time for the hot path.
//
// NowNs() reads CLOCK_MONOTONIC_COARSE through the vDSO: a few ns, resolution
// of a scheduler tick (1-4 ms), which is plenty for thresholds in ms.
// Thread safety: async-signal-safe; may be called from a hook.
#ifndef LEAKWATCH_TRACKER_CLOCK_H_
#define LEAKWATCH_TRACKER_CLOCK_H_

#include <time.h>
#include <x86intrin.h>

#include <atomic>
#include <cstdint>

namespace leakwatch {

inline int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

namespace clock_internal {
// This thread's last NowNs() through HookNowNs and the TSC then.
extern __attribute__((tls_model("initial-exec"))) __thread uint64_t t_tsc;
extern __attribute__((tls_model("initial-exec"))) __thread int64_t t_ns;
// TSC ticks in the reuse window (0: HookNowNs always reads the clock).
extern std::atomic<uint64_t> g_reuse_ticks;
int64_t ReadHookClock(uint64_t tsc);
}  // namespace clock_internal

// NowNs() for a hook: this thread's last reading again if the TSC says it
// was taken less than a quarter of the coarse clock's resolution ago (1 ms
// where the tick is 4 ms; 250 us at 1 ms; never more than 1 ms), else a new
// one: no value it gives is further behind than a quarter of what the clock
// itself can be. A hook that
// records several things about one call (a call begun, its result, the
// connection's activity), and a loop of hooked calls, read the clock about
// once. Used only where the kernel's own clock source is the TSC (constant
// and synchronised across CPUs; see EnableHookClock); the ratio of ticks to
// time is learned from the first readings 100 ms apart, and until then every
// call reads the clock. A TSC that seems to go backwards (another CPU) reads
// the clock too. Async-signal-safe (a handler's reading in between is
// another valid reading).
inline int64_t HookNowNs() {
  const uint64_t tsc = __rdtsc();
  if (tsc - clock_internal::t_tsc <
      clock_internal::g_reuse_ticks.load(std::memory_order_relaxed)) {
    return clock_internal::t_ns;
  }
  return clock_internal::ReadHookClock(tsc);
}

// Lets HookNowNs reuse readings if the kernel's clock source is the TSC
// (reads /sys once; called at start-up).
void EnableHookClock();

// Wall-clock time since the epoch, for reports, metrics and lock deadlines
// (never for measuring durations). Async-signal-safe.
inline int64_t WallClockNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
inline int64_t WallClockMs() { return WallClockNs() / 1000000; }

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_CLOCK_H_
