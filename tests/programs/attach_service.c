/* A libpq service that is already running when leakwatch attaches to it.
 *
 * A worker thread queries its own connection every 20 ms (a service at
 * work); the main thread waits for commands on stdin, one per line, and
 * answers each with "ok COMMAND" on stdout once done:
 *   open-early   open the connection `early` (do it before the attach)
 *   use-early    one query on `early` (after the attach: it is adopted)
 *   leak-result  a report request that keeps its result (never PQclear'd)
 *   leak-conn    a request that opens a connection and forgets it
 *   clean        a request that releases everything it takes
 *   counts       "counts QUERIES FAILURES" from the worker
 *   errno        "errno N": errno as the read of this command left it (it is
 *                set to 4242 before every read: a read that succeeds keeps
 *                it, so anything else was changed by someone else)
 *   quit         stops the worker, closes its own connections, exits 0
 * Exit status 1 if any worker query failed. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pg_common.h"

static atomic_int stop_worker;
static atomic_long worker_queries, worker_failures;
static PGresult* kept_results[64];
static int kept;

static void* worker(void* arg) {
  (void)arg;
  PGconn* conn = connect_or_die();
  while (!atomic_load(&stop_worker)) {
    PGresult* res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
      atomic_fetch_add(&worker_failures, 1);
    }
    PQclear(res);
    atomic_fetch_add(&worker_queries, 1);
    usleep(20000);
  }
  PQfinish(conn);
  return NULL;
}

/* Keeps the result "for later" and never clears it. */
static void handle_report_request(PGconn* conn) {
  PGresult* res = PQexec(conn, "SELECT count(*) FROM pg_class");
  if (kept < 64) kept_results[kept++] = res;
}

/* Opens a connection for one request and forgets it on the way out. */
static void handle_lookup_request(void) {
  PGconn* conn = connect_or_die();
  PQclear(PQexec(conn, "SELECT 2"));
  conn = NULL; /* the early return every leak has */
}

static void handle_clean_request(void) {
  PGconn* conn = connect_or_die();
  PQclear(PQexec(conn, "SELECT 3"));
  PQfinish(conn);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  PGconn* main_conn = connect_or_die();
  PGconn* early = NULL;
  pthread_t thread;
  pthread_create(&thread, NULL, worker, NULL);
  char line[128];
  for (;;) {
    errno = 4242;
    if (fgets(line, sizeof line, stdin) == NULL) break;
    int seen = errno;
    line[strcspn(line, "\n")] = '\0';
    if (strcmp(line, "open-early") == 0) {
      early = connect_or_die();
    } else if (strcmp(line, "use-early") == 0) {
      if (early != NULL) exec_or_die(early, "SELECT 4");
    } else if (strcmp(line, "leak-result") == 0) {
      handle_report_request(main_conn);
    } else if (strcmp(line, "leak-conn") == 0) {
      handle_lookup_request();
    } else if (strcmp(line, "clean") == 0) {
      handle_clean_request();
    } else if (strcmp(line, "counts") == 0) {
      printf("counts %ld %ld\n", atomic_load(&worker_queries),
             atomic_load(&worker_failures));
      continue;
    } else if (strcmp(line, "errno") == 0) {
      printf("errno %d\n", seen);
      continue;
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      printf("unknown %s\n", line);
      continue;
    }
    printf("ok %s\n", line);
  }
  atomic_store(&stop_worker, 1);
  pthread_join(thread, NULL);
  PQfinish(main_conn);
  printf("bye\n");
  return atomic_load(&worker_failures) == 0 ? 0 : 1;
}
