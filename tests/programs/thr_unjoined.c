/* Joinable threads that finish quickly, from one creation site
 * (spawn_summer, called from one place).
 *
 * Usage: thr_unjoined MODE [COUNT [WAIT_MS]]   (default COUNT 50, WAIT_MS 1000)
 *   leak  the threads are never joined: once every one of them has exited
 *         (its kernel task is gone), the program waits WAIT_MS and returns
 *         from main — each keeps its stack mapped, a leak
 *   join  every thread is joined as soon as it is done; then the program
 *         waits WAIT_MS and returns (clean)
 *   late  like leak, but after WAIT_MS every thread is joined after all,
 *         then the program returns (slow, not leaked)
 * Prints "COUNT threads finished, J joined" on stdout. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "thr_common.h"

#define kMaxThreads 4096

static int tids[kMaxThreads];
static atomic_int started;

/* The start routine: publishes its kernel tid, adds up a few numbers and
 * returns. */
void* sum_numbers(void* arg) {
  int index = (int)(long)arg;
  tids[index] = gettid();
  atomic_fetch_add(&started, 1);
  long sum = 0;
  for (long i = 0; i < 1000; ++i) sum += i;
  return (void*)sum;
}

/* The creation site. */
__attribute__((noinline)) pthread_t spawn_summer(int index) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, sum_numbers, (void*)(long)index);
  if (rc != 0) thr_die("pthread_create", rc);
  return t;
}

static void join_all(pthread_t* threads, int count) {
  for (int i = 0; i < count; ++i) {
    void* result;
    int rc = pthread_join(threads[i], &result);
    if (rc != 0) thr_die("pthread_join", rc);
    if ((long)result != 499500) {
      fprintf(stderr, "thread %d returned %ld\n", i, (long)result);
      exit(2);
    }
  }
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "leak";
  int count = argc > 2 ? atoi(argv[2]) : 50;
  double wait_ms = argc > 3 ? atof(argv[3]) : 1000;
  int leak = strcmp(mode, "leak") == 0;
  int join = strcmp(mode, "join") == 0;
  int late = strcmp(mode, "late") == 0;
  if (!leak && !join && !late) {
    fprintf(stderr, "usage: thr_unjoined leak|join|late [COUNT [WAIT_MS]]\n");
    return 2;
  }
  if (count < 1 || count > kMaxThreads) {
    fprintf(stderr, "COUNT must be 1..%d\n", kMaxThreads);
    return 2;
  }
  static pthread_t threads[kMaxThreads];
  for (int i = 0; i < count; ++i) threads[i] = spawn_summer(i);
  int joined = 0;
  if (join) {
    join_all(threads, count);
    joined = count;
  } else {
    /* Wait until every thread has published its tid, then until each task
     * is gone: all of them have exited and none is joined. */
    double deadline = thr_now_ms() + 10000;
    while (atomic_load(&started) < count) {
      if (thr_now_ms() > deadline) {
        fprintf(stderr, "threads did not start\n");
        return 3;
      }
      thr_sleep_ms(0.2);
    }
    for (int i = 0; i < count; ++i) thr_wait_task_gone(tids[i], 10000);
  }
  thr_sleep_ms(wait_ms);
  if (late) {
    join_all(threads, count);
    joined = count;
  }
  printf("%d threads finished, %d joined\n", count, joined);
  return 0;
}
