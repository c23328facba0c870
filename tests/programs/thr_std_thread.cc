// C++ threads, all ending cleanly — nothing here is a leak:
//   - std::thread, joined (one of them throws and catches an exception inside,
//     so C++ unwinding under the agent is exercised too)
//   - std::jthread, joined by its destructor
//   - std::async(std::launch::async), whose thread the future joins
//   - a std::thread detached by its creator, waited for until its kernel
//     task is gone
// Then the program idles IDLE_MS (so the agent's watchdog scans with
// everything settled) and prints "threads created: N" — the threads this
// program started (each is one pthread_create in libstdc++).
//
// Usage: thr_std_thread [IDLE_MS]   (default 600)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include "thr_common.h"

namespace {

int created = 0;

long SumTo(long n) {
  long sum = 0;
  for (long i = 1; i <= n; ++i) sum += i;
  return sum;
}

long ThrowAndCatch() {
  try {
    throw std::runtime_error("thrown inside a thread");
  } catch (const std::runtime_error&) {
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  double idle_ms = argc > 1 ? atof(argv[1]) : 600;
  std::atomic<long> total{0};

  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&total, i] { total += SumTo(100 * (i + 1)); });
      ++created;
    }
    threads.emplace_back([&total] { total += ThrowAndCatch(); });
    ++created;
    for (std::thread& t : threads) t.join();
  }
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < 3; ++i) {
      threads.emplace_back([&total] { total += SumTo(10); });
      ++created;
    }
  }  // joined here
  {
    std::future<long> a = std::async(std::launch::async, SumTo, 1000);
    std::future<long> b = std::async(std::launch::async, SumTo, 2000);
    created += 2;
    total += a.get() + b.get();
  }  // the futures join their threads here
  {
    std::atomic<int> tid{0};
    std::thread t([&tid] { tid = gettid(); });
    ++created;
    t.detach();
    double deadline = thr_now_ms() + 10000;
    while (tid == 0) {
      if (thr_now_ms() > deadline) {
        std::fprintf(stderr, "the detached thread did not start\n");
        return 3;
      }
      thr_sleep_ms(0.2);
    }
    thr_wait_task_gone(tid, 10000);
  }
  // Every thread ran.
  long expected = SumTo(100) + SumTo(200) + SumTo(300) + SumTo(400) + 1 +
                  3 * SumTo(10) + SumTo(1000) + SumTo(2000);
  if (total != expected) {
    std::fprintf(stderr, "total %ld, expected %ld\n", total.load(), expected);
    return 4;
  }
  thr_sleep_ms(idle_ms);
  std::printf("threads created: %d\n", created);
  return 0;
}
