/* reach_busy — reachability scans while the program is busy. Leaks LOST
 * results (PQmakeEmptyPGresult, the pointer dropped at once), keeps KEEP
 * results in a global array, then THREADS threads acquire and release
 * results (PQmakeEmptyPGresult / PQclear) and MySQL handles
 * (mysql_init(NULL) / mysql_close) in a tight loop for SECONDS seconds, while
 * the agent's watchdog scans; then they are told to stop and joined, and
 * main returns 0 with the LOST results lost and the KEEP results held.
 * No server is needed. Run under the agent by
 * tests/integration/pool_reach_test.cc.
 *
 * Usage: reach_busy THREADS SECONDS LOST KEEP
 * Prints "lost LOST kept KEEP, THREADS threads did N cycles" (N > 0).
 * Exit status 0; 2 on a failure; 64 on bad arguments. */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>

#include "thr_common.h"

#define NOINLINE __attribute__((noinline))

enum { kMaxThreads = 256, kMaxKept = 1024 };

PGresult* g_kept[kMaxKept];
static atomic_int g_stop;
static atomic_long g_cycles;

void leak_results(int count);
void keep_results(int count);
int set_up_handles(int lost, int kept);
void* churn(void* arg);

/* Results made and dropped: nothing points to them once this returns. */
NOINLINE void leak_results(int count) {
  for (int i = 0; i < count; ++i) {
    if (PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK) == NULL) {
      fprintf(stderr, "PQmakeEmptyPGresult failed\n");
      exit(2);
    }
  }
}

/* Results kept in the global array g_kept. */
NOINLINE void keep_results(int count) {
  for (int i = 0; i < count; ++i) {
    g_kept[i] = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    if (g_kept[i] == NULL) {
      fprintf(stderr, "PQmakeEmptyPGresult failed\n");
      exit(2);
    }
  }
}

/* Makes the handles from a frame with a 64 KiB buffer: the dead frames of
 * leak_results and of the library under it then lie below anything main
 * uses later (pthread_join, exit, the agent's exit report), so no stale copy
 * of a dropped pointer in them is ever in the live part of the stack, which
 * a conservative scan must take as pointers. */
NOINLINE int set_up_handles(int lost, int kept) {
  char scratch[64 * 1024];
  int n = snprintf(scratch, sizeof scratch, "lost %d kept %d", lost, kept);
  leak_results(lost);
  keep_results(kept);
  return scratch[n - 1] != '\0';
}

/* A worker: results and MySQL handles acquired and released until told to
 * stop. */
void* churn(void* arg) {
  (void)arg;
  long cycles = 0;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    PGresult* res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    MYSQL* mysql = mysql_init(NULL);
    if (res == NULL || mysql == NULL) {
      fprintf(stderr, "out of memory\n");
      exit(2);
    }
    mysql_close(mysql);
    PQclear(res);
    ++cycles;
  }
  atomic_fetch_add(&g_cycles, cycles);
  return NULL;
}

int main(int argc, char** argv) {
  int threads = argc == 5 ? atoi(argv[1]) : 0;
  double seconds = argc == 5 ? atof(argv[2]) : -1;
  int lost = argc == 5 ? atoi(argv[3]) : -1;
  int kept = argc == 5 ? atoi(argv[4]) : -1;
  if (threads < 1 || threads > kMaxThreads || seconds < 0 || lost < 0 ||
      kept < 0 || kept > kMaxKept) {
    fprintf(stderr, "usage: reach_busy THREADS SECONDS LOST KEEP\n");
    return 64;
  }
  if (mysql_library_init(0, NULL, NULL) != 0) {
    fprintf(stderr, "mysql_library_init failed\n");
    return 2;
  }
  if (!set_up_handles(lost, kept)) return 2;

  pthread_t workers[kMaxThreads];
  for (int i = 0; i < threads; ++i) {
    int rc = pthread_create(&workers[i], NULL, churn, NULL);
    if (rc != 0) thr_die("pthread_create", rc);
  }
  thr_sleep_ms(seconds * 1000);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < threads; ++i) {
    int rc = pthread_join(workers[i], NULL);
    if (rc != 0) thr_die("pthread_join", rc);
  }
  long cycles = atomic_load(&g_cycles);
  printf("lost %d kept %d, %d threads did %ld cycles\n", lost, kept, threads,
         cycles);
  return cycles > 0 ? 0 : 2;
}
