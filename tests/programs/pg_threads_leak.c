/* 8 worker threads, each leaking one connection from the same function:
 * one acquisition site, count 8. */
#include <pthread.h>

#include "pg_common.h"

#define kThreads 8

__attribute__((noinline)) PGconn* open_worker_conn(void) {
  PGconn* conn = connect_or_die();
  exec_or_die(conn, "SELECT 1");
  return conn; /* the worker forgets it */
}

static void* worker(void* arg) {
  (void)arg;
  open_worker_conn();
  return NULL;
}

int main(void) {
  pthread_t threads[kThreads];
  for (int i = 0; i < kThreads; ++i) {
    if (pthread_create(&threads[i], NULL, worker, NULL) != 0) return 2;
  }
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  printf("workers done\n");
  return 0;
}
