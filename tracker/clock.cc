#include "tracker/clock.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace leakwatch {
namespace clock_internal {

__attribute__((tls_model("initial-exec"))) __thread uint64_t t_tsc = 0;
__attribute__((tls_model("initial-exec"))) __thread int64_t t_ns = 0;
std::atomic<uint64_t> g_reuse_ticks{0};

namespace {

std::atomic<bool> g_tsc_clock{false};
// The reuse window: a quarter of CLOCK_MONOTONIC_COARSE's resolution.
std::atomic<int64_t> g_reuse_ns{0};
// The first reading (TSC, ns) of the calibration; 0 = none yet.
std::atomic<uint64_t> g_first_tsc{0};
std::atomic<int64_t> g_first_ns{0};
constexpr int64_t kCalibrationNs = 100000000;

}  // namespace

int64_t ReadHookClock(uint64_t tsc) {
  const int64_t now = NowNs();
  t_tsc = tsc;
  t_ns = now;
  if (g_reuse_ticks.load(std::memory_order_relaxed) == 0 &&
      g_tsc_clock.load(std::memory_order_relaxed)) {
    uint64_t first = g_first_tsc.load(std::memory_order_acquire);
    if (first == 0) {
      g_first_ns.store(now, std::memory_order_relaxed);
      g_first_tsc.compare_exchange_strong(first, tsc,
                                          std::memory_order_release);
    } else {
      const int64_t ns = now - g_first_ns.load(std::memory_order_relaxed);
      if (ns >= kCalibrationNs && tsc > first) {
        // (A thread that lost the race above may have stored its time: a
        // few ns apart, well within the coarse clock's resolution.)
        const unsigned __int128 ticks =
            static_cast<unsigned __int128>(tsc - first) *
            static_cast<uint64_t>(g_reuse_ns.load(std::memory_order_relaxed)) /
            static_cast<uint64_t>(ns);
        if (ticks > 0 && ticks < (uint64_t{1} << 40)) {
          g_reuse_ticks.store(static_cast<uint64_t>(ticks),
                              std::memory_order_relaxed);
        }
      }
    }
  }
  return now;
}

}  // namespace clock_internal

void EnableHookClock() {
  const int saved_errno = errno;
  char source[32] = {};
  int fd = open(
      "/sys/devices/system/clocksource/clocksource0/"
      "current_clocksource",
      O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, source, sizeof source - 1);
    close(fd);
    struct timespec resolution;
    if (n > 0 && std::strncmp(source, "tsc\n", 4) == 0 &&
        clock_getres(CLOCK_MONOTONIC_COARSE, &resolution) == 0 &&
        resolution.tv_sec == 0 && resolution.tv_nsec >= 40000) {
      const int64_t window = std::min<int64_t>(resolution.tv_nsec / 4, 1000000);
      clock_internal::g_reuse_ns.store(window, std::memory_order_relaxed);
      clock_internal::g_tsc_clock.store(true, std::memory_order_relaxed);
    }
  }
  errno = saved_errno;
}

}  // namespace leakwatch
