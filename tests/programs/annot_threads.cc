// include/leakwatch.h from C++ (no client library): two threads exit and are
// never joined; the one kept on purpose is annotated, the forgotten one is
// not, so only the forgotten one is a leak. Prints
// "loaded=L kept=K null=N" (leakwatch_is_loaded, the thread's annotation,
// and annotating a null handle: always 0) and exits 0.
//
// Usage: annot_threads [keep-only]   keep-only: no forgotten thread, so
// nothing is left to report.
#include <leakwatch.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "thr_common.h"

namespace {

std::atomic<int> tids[2];

void* publish_tid(void* arg) {
  tids[reinterpret_cast<intptr_t>(arg)].store(static_cast<int>(gettid()));
  return nullptr;
}

pthread_t Start(intptr_t index) {
  pthread_t t;
  int rc =
      pthread_create(&t, nullptr, publish_tid, reinterpret_cast<void*>(index));
  if (rc != 0) thr_die("pthread_create", rc);
  return t;
}

}  // namespace

__attribute__((noinline)) pthread_t start_kept_thread() { return Start(0); }
__attribute__((noinline)) pthread_t start_forgotten_thread() {
  return Start(1);
}

int main(int argc, char** argv) {
  bool forget = !(argc > 1 && std::strcmp(argv[1], "keep-only") == 0);
  pthread_t kept = start_kept_thread();
  int kept_result = leakwatch_ignore_thread(kept);
  if (forget) start_forgotten_thread();
  for (auto& tid : tids) {
    if (&tid == &tids[1] && !forget) break;
    double deadline = thr_now_ms() + 10000;
    while (tid.load() == 0) {
      if (thr_now_ms() > deadline) {
        std::fprintf(stderr, "thread did not start\n");
        return 3;
      }
      thr_sleep_ms(0.2);
    }
    thr_wait_task_gone(tid.load(), 10000);
  }
  std::printf("loaded=%d kept=%d null=%d\n", leakwatch_is_loaded(), kept_result,
              leakwatch_ignore_handle(nullptr));
  return 0;
}
