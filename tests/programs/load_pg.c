/* Load for the agent (issue 6, "Load"): THREADS threads (default 64) each,
 * for SECONDS (default 20), open a real PostgreSQL connection (PG*
 * environment, scripts/pg-sandbox), use it for up to OPS_PER_CONN operations
 * of a fixed mix, and close it; then open the next one. Every handle is
 * released: a clean program, so the agent must say nothing but its stats.
 *
 * One connection per thread at a time (the sandbox server's max_connections
 * is 100). The mix touches every libpq hook that hands out a result, so the
 * agent's nested-call rule (PQexec -> PQgetResult, PQconnectdb ->
 * PQconnectStart) is under load too:
 *   PQexec, PQexecParams, PQprepare + PQexecPrepared, PQdescribePrepared,
 *   PQsendQuery + PQgetResult (until NULL), PQgetCancel + PQfreeCancel,
 *   PQcopyResult, PQmakeEmptyPGresult.
 *
 * Each thread counts what it did; main adds them up after joining and prints
 * one "label: N" line per count (stdout), and the peak RSS (getrusage
 * ru_maxrss, KiB). A connection that fails (the server full because other
 * tests hold connections) is still PQfinish'ed and counted as opened and
 * closed; it is counted in "connect failures" too, and the thread waits a
 * little before the next attempt.
 *
 * Runs at nice 19 (beside other tests under ctest -j).
 *
 * Usage: load_pg [SECONDS [THREADS]]
 * Exit status: 0; 2 on a setup error (pthread_create, a failed query on a
 * good connection). */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define OPS_PER_CONN 24

struct counts {
  long conns_opened, conns_closed, connect_failures;
  long results_acquired, results_cleared;
  long cancels_acquired, cancels_freed;
  long queries; /* round trips that ran SQL */
  long rows;    /* rows read from results */
};

struct worker {
  pthread_t thread;
  int index;
  double until_s;
  struct counts c;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char* what, PGconn* conn) {
  fprintf(stderr, "%s: %s", what, conn ? PQerrorMessage(conn) : "failed\n");
  exit(2);
}

/* A result the program now owns: counted, checked, read. */
static PGresult* take(struct worker* w, PGresult* res, PGconn* conn,
                      const char* what) {
  if (res == NULL) die(what, conn);
  w->c.results_acquired++;
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
      st != PGRES_EMPTY_QUERY) {
    die(what, conn);
  }
  for (int i = 0; i < PQntuples(res); ++i) {
    if (PQgetvalue(res, i, 0) != NULL) w->c.rows++;
  }
  return res;
}

static void clear(struct worker* w, PGresult* res) {
  PQclear(res);
  w->c.results_cleared++;
}

static void one_op(struct worker* w, PGconn* conn, int op) {
  char num[32];
  snprintf(num, sizeof num, "%d", w->index * 1000 + op);
  const char* params[1] = {num};
  switch (op % 8) {
    case 0: {
      w->c.queries++;
      clear(w, take(w, PQexec(conn, "SELECT g FROM generate_series(1, 20) g"),
                    conn, "PQexec"));
      break;
    }
    case 1: {
      w->c.queries++;
      clear(w, take(w, PQexecParams(conn, "SELECT $1::int + 1", 1, NULL,
                                    params, NULL, NULL, 0),
                    conn, "PQexecParams"));
      break;
    }
    case 2: {
      /* A statement prepared on this connection, then run. */
      w->c.queries += 2;
      clear(w, take(w, PQprepare(conn, "", "SELECT $1::int * 2", 1, NULL),
                    conn, "PQprepare"));
      clear(w, take(w, PQexecPrepared(conn, "", 1, params, NULL, NULL, 0),
                    conn, "PQexecPrepared"));
      break;
    }
    case 3: {
      w->c.queries += 2;
      clear(w, take(w, PQprepare(conn, "", "SELECT $1::text", 1, NULL), conn,
                    "PQprepare"));
      clear(w, take(w, PQdescribePrepared(conn, ""), conn,
                    "PQdescribePrepared"));
      break;
    }
    case 4: {
      /* Two statements in one query string: two results, then NULL. */
      w->c.queries++;
      if (!PQsendQuery(conn, "SELECT 1; SELECT g FROM generate_series(1, 5) g")) {
        die("PQsendQuery", conn);
      }
      PGresult* res;
      while ((res = PQgetResult(conn)) != NULL) {
        clear(w, take(w, res, conn, "PQgetResult"));
      }
      break;
    }
    case 5: {
      PGcancel* cancel = PQgetCancel(conn);
      if (cancel == NULL) die("PQgetCancel", conn);
      w->c.cancels_acquired++;
      PQfreeCancel(cancel);
      w->c.cancels_freed++;
      break;
    }
    case 6: {
      /* A copy outlives its source for a moment. */
      w->c.queries++;
      PGresult* res = take(w, PQexec(conn, "SELECT 'copy'"), conn, "PQexec");
      PGresult* copy = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
      clear(w, res);
      clear(w, take(w, copy, conn, "PQcopyResult"));
      break;
    }
    case 7: {
      clear(w, take(w, PQmakeEmptyPGresult(conn, PGRES_COMMAND_OK), conn,
                    "PQmakeEmptyPGresult"));
      break;
    }
  }
}

static void* work(void* arg) {
  struct worker* w = arg;
  int op = w->index; /* threads start at different points of the mix */
  while (now_s() < w->until_s) {
    PGconn* conn = PQconnectdb("");
    w->c.conns_opened++;
    if (conn == NULL) die("PQconnectdb", NULL);
    if (PQstatus(conn) != CONNECTION_OK) {
      w->c.connect_failures++;
      PQfinish(conn);
      w->c.conns_closed++;
      struct timespec pause = {0, 20 * 1000 * 1000};
      nanosleep(&pause, NULL);
      continue;
    }
    for (int i = 0; i < OPS_PER_CONN && now_s() < w->until_s; ++i) {
      one_op(w, conn, op++);
    }
    PQfinish(conn);
    w->c.conns_closed++;
  }
  return NULL;
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 20;
  int threads = argc > 2 ? atoi(argv[2]) : 64;
  if (seconds <= 0 || threads <= 0) {
    fprintf(stderr, "usage: load_pg [SECONDS [THREADS]]\n");
    return 2;
  }
  /* Nice 19 (the threads inherit it), so that 64 busy threads do not starve
   * the timing-sensitive tests ctest -j runs beside this one. */
  if (setpriority(PRIO_PROCESS, 0, 19) != 0) perror("setpriority");
  struct worker* workers = calloc((size_t)threads, sizeof *workers);
  if (workers == NULL) return 2;
  double until = now_s() + seconds;
  for (int i = 0; i < threads; ++i) {
    workers[i].index = i;
    workers[i].until_s = until;
    int rc = pthread_create(&workers[i].thread, NULL, work, &workers[i]);
    if (rc != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(rc));
      return 2;
    }
  }
  struct counts t = {0};
  for (int i = 0; i < threads; ++i) {
    int rc = pthread_join(workers[i].thread, NULL);
    if (rc != 0) {
      fprintf(stderr, "pthread_join: %s\n", strerror(rc));
      return 2;
    }
    struct counts* c = &workers[i].c;
    t.conns_opened += c->conns_opened;
    t.conns_closed += c->conns_closed;
    t.connect_failures += c->connect_failures;
    t.results_acquired += c->results_acquired;
    t.results_cleared += c->results_cleared;
    t.cancels_acquired += c->cancels_acquired;
    t.cancels_freed += c->cancels_freed;
    t.queries += c->queries;
    t.rows += c->rows;
  }
  free(workers);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("threads: %d\n", threads);
  printf("seconds: %g\n", seconds);
  printf("connections opened: %ld\n", t.conns_opened);
  printf("connections closed: %ld\n", t.conns_closed);
  printf("connect failures: %ld\n", t.connect_failures);
  printf("results acquired: %ld\n", t.results_acquired);
  printf("results cleared: %ld\n", t.results_cleared);
  printf("cancels acquired: %ld\n", t.cancels_acquired);
  printf("cancels freed: %ld\n", t.cancels_freed);
  printf("queries: %ld\n", t.queries);
  printf("rows: %ld\n", t.rows);
  printf("peak rss kib: %ld\n", ru.ru_maxrss);
  /* Out before exit: a library's destructor that hangs at exit (seen under
   * ThreadSanitizer, tests/load/run_sanitizers.sh) must not take it along. */
  fflush(stdout);
  return 0;
}
