// Time for the hot path.
//
// NowNs() reads CLOCK_MONOTONIC_COARSE through the vDSO: a few ns, resolution
// of a scheduler tick (1-4 ms), which is plenty for thresholds in ms.
// Thread safety: async-signal-safe; may be called from a hook.
#ifndef LEAKWATCH_TRACKER_CLOCK_H_
#define LEAKWATCH_TRACKER_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace leakwatch {

inline int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

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
