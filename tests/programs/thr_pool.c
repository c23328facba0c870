/* A worker pool: WORKERS long-lived threads started at once (one creation
 * site, start_pool_worker, called from one loop), busy for RUN_MS. Not a
 * leak: threads started together and alive since are a pool, at any count.
 *
 * Usage: thr_pool MODE [WORKERS [RUN_MS]]   (default WORKERS 8, RUN_MS 3000)
 *   join  after RUN_MS the workers are told to stop and joined; main returns
 *   exit  after RUN_MS the program calls exit(0) with the workers running
 * Prints "pool of WORKERS workers joined" or "... still running at exit". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "thr_common.h"

static atomic_int stop;
static atomic_long jobs;

/* A worker: takes a "job" every 5 ms until told to stop. */
void* pool_worker(void* arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    thr_sleep_ms(5);
    atomic_fetch_add(&jobs, 1);
  }
  return NULL;
}

/* The creation site. */
__attribute__((noinline)) pthread_t start_pool_worker(void) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, pool_worker, NULL);
  if (rc != 0) thr_die("pthread_create", rc);
  return t;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "join";
  int workers = argc > 2 ? atoi(argv[2]) : 8;
  double run_ms = argc > 3 ? atof(argv[3]) : 3000;
  int join = strcmp(mode, "join") == 0;
  if (!join && strcmp(mode, "exit") != 0) {
    fprintf(stderr, "usage: thr_pool join|exit [WORKERS [RUN_MS]]\n");
    return 2;
  }
  if (workers < 1 || workers > 1024) {
    fprintf(stderr, "WORKERS must be 1..1024\n");
    return 2;
  }
  pthread_t pool[1024];
  for (int i = 0; i < workers; ++i) pool[i] = start_pool_worker();
  thr_sleep_ms(run_ms);
  if (join) {
    atomic_store(&stop, 1);
    for (int i = 0; i < workers; ++i) {
      int rc = pthread_join(pool[i], NULL);
      if (rc != 0) thr_die("pthread_join", rc);
    }
  }
  if (atomic_load(&jobs) < workers) {
    fprintf(stderr, "the pool did no work\n");
    return 4;
  }
  printf("pool of %d workers %s\n", workers,
         join ? "joined" : "still running at exit");
  if (!join) exit(0); /* the workers are still running */
  return 0;
}
