/* The C equivalent of "one watcher goroutine per leaked connection": for each
 * incoming "request" the program opens a real PostgreSQL connection, starts a
 * watcher thread for it, runs a query and finishes the connection — but the
 * watcher (watch_connection) waits for a notification that never comes and
 * never exits. The connections are all closed; the threads pile up, all from
 * one creation site (start_watcher, called from one place).
 *
 * Usage: thr_watchers [COUNT [SPACING_MS [IDLE_MS]]]   (default 30 50 1000)
 * Watcher i is started at (start + i * SPACING_MS) + connect time; after the
 * last one the program idles IDLE_MS and returns from main with every
 * watcher still blocked. Prints "started COUNT watchers" on stdout. */
#define _GNU_SOURCE
#include <pthread.h>

#include "pg_common.h"
#include "thr_common.h"

/* The watcher: would wait for the connection's notifications; blocks on a
 * pipe nobody writes. */
void* watch_connection(void* arg) {
  (void)arg;
  thr_block_forever();
  return NULL;
}

/* The creation site of every watcher. */
__attribute__((noinline)) void start_watcher(void) {
  pthread_t watcher;
  int rc = pthread_create(&watcher, NULL, watch_connection, NULL);
  if (rc != 0) thr_die("pthread_create", rc);
}

/* One request: a connection, its watcher, a query, the connection closed. */
__attribute__((noinline)) void serve_request(void) {
  PGconn* conn = connect_or_die();
  start_watcher();
  exec_or_die(conn, "SELECT 1");
  PQfinish(conn);
}

int main(int argc, char** argv) {
  int count = argc > 1 ? atoi(argv[1]) : 30;
  double spacing_ms = argc > 2 ? atof(argv[2]) : 50;
  double idle_ms = argc > 3 ? atof(argv[3]) : 1000;
  thr_never_fd(); /* before any thread reads it */
  double start = thr_now_ms();
  for (int i = 0; i < count; ++i) {
    thr_sleep_until_ms(start + i * spacing_ms);
    serve_request();
  }
  printf("started %d watchers\n", count);
  fflush(stdout);
  thr_sleep_ms(idle_ms);
  return 0; /* the watchers are still blocked */
}
