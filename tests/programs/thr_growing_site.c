/* One creation site (start_stuck_thread, reached from one loop) whose running
 * threads grow 4 -> 8 -> 16: batches of 4, 4 and 8 threads, batch i started
 * at start + i * GAP_MS, each batch's threads created back to back. Every
 * thread blocks forever; after the last batch the program idles IDLE_MS and
 * returns from main with all 16 still blocked.
 *
 * Usage: thr_growing_site [GAP_MS [IDLE_MS]]   (default 625 900)
 * Prints "16 threads started in 3 batches" on stdout. */
#define _GNU_SOURCE
#include <pthread.h>

#include "thr_common.h"

/* The start routine: waits for work that never comes. */
void* wait_for_work(void* arg) {
  (void)arg;
  thr_block_forever();
  return NULL;
}

/* The creation site. */
__attribute__((noinline)) void start_stuck_thread(void) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, wait_for_work, NULL);
  if (rc != 0) thr_die("pthread_create", rc);
}

__attribute__((noinline)) void start_batch(int n) {
  for (int i = 0; i < n; ++i) start_stuck_thread();
}

int main(int argc, char** argv) {
  double gap_ms = argc > 1 ? atof(argv[1]) : 625;
  double idle_ms = argc > 2 ? atof(argv[2]) : 900;
  static const int kBatches[] = {4, 4, 8};
  thr_never_fd(); /* before any thread reads it */
  double start = thr_now_ms();
  int total = 0;
  for (int b = 0; b < 3; ++b) {
    thr_sleep_until_ms(start + b * gap_ms);
    start_batch(kBatches[b]);
    total += kBatches[b];
  }
  printf("%d threads started in 3 batches\n", total);
  fflush(stdout);
  thr_sleep_ms(idle_ms);
  return 0;
}
