/*
 * demo_service — a small "service" that leaks libpq handles the way real
 * services do; scripts/demo.sh runs it under leakwatch.
 *
 * It runs for about 4 seconds in ticks of 100 ms. Every tick it pings the
 * database over one long-lived "pool" connection (busy all the time: not a
 * leak). Alongside, it serves simulated requests:
 *
 *   - handle_user_lookup_request(): looks a user up; when the user does not
 *     exist it returns early and forgets PQclear — an abandoned PGresult
 *     (users 3, 6 and 9: three leaked results from one stack).
 *   - handle_report_request(): opens a connection per request; when the report
 *     is served from the cache it returns early and never calls PQfinish — a
 *     leaked PGconn that goes idle (reports 2 and 4: two leaked connections).
 *
 * Everything else is released. Connection settings come from the PG*
 * environment variables (empty conninfo). Exit status: 0, or 1 if the server
 * cannot be reached or a query fails.
 *
 * The functions are non-static and noinline so that each leak has its own
 * readable acquire stack.
 */
#define _POSIX_C_SOURCE 200809L

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NOINLINE __attribute__((noinline))

enum {
  kTickMs = 100,
  kRunTicks = 40,          /* 4 s in all */
  kUserRequests = 10,      /* one per tick, ticks 0..9 */
  kReportEveryTicks = 5,   /* report requests at ticks 5, 10, 15, 20 */
  kReportRequests = 4,
};

PGconn *open_pool_connection(void);
int pool_heartbeat(PGconn *pool);
int handle_user_lookup_request(PGconn *pool, int user_id);
int handle_report_request(int report_id);
int dispatch_requests(PGconn *pool, int tick);
int run_service(PGconn *pool);

/* Connects with the PG* environment; NULL (error printed) on failure. */
NOINLINE PGconn *open_pool_connection(void) {
  PGconn *conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "demo_service: cannot connect to the database: %s",
            PQerrorMessage(conn));
    PQfinish(conn);
    return NULL;
  }
  return conn;
}

/* The pool's keep-alive: a trivial query, result cleared. 0 or -1. */
NOINLINE int pool_heartbeat(PGconn *pool) {
  PGresult *res = PQexec(pool, "SELECT 1");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, "demo_service: heartbeat failed: %s",
            PQerrorMessage(pool));
    PQclear(res);
    return -1;
  }
  PQclear(res);
  return 0;
}

/*
 * GET /users/<id>. Users whose id is a multiple of 3 do not exist.
 * LEAK: the "not found" early return does not PQclear the result.
 */
NOINLINE int handle_user_lookup_request(PGconn *pool, int user_id) {
  char id[16];
  snprintf(id, sizeof id, "%d", user_id);
  const char *params[1] = {id};
  PGresult *res = PQexecParams(
      pool, "SELECT 'user-' || $1::int WHERE $1::int % 3 <> 0", 1, NULL,
      params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, "demo_service: user lookup failed: %s",
            PQerrorMessage(pool));
    PQclear(res);
    return -1;
  }
  if (PQntuples(res) == 0) {
    printf("demo_service: GET /users/%d -> 404 not found\n", user_id);
    return 0; /* leaks res */
  }
  PQclear(res);
  return 0;
}

/*
 * GET /reports/<id>: opens its own connection to count the sessions. Even
 * report ids are "served from the cache".
 * LEAK: the cache path returns without PQfinish.
 */
NOINLINE int handle_report_request(int report_id) {
  PGconn *conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "demo_service: report connection failed: %s",
            PQerrorMessage(conn));
    PQfinish(conn);
    return -1;
  }
  PGresult *res = PQexec(
      conn,
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, "demo_service: report query failed: %s",
            PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    return -1;
  }
  long sessions = atol(PQgetvalue(res, 0, 0));
  PQclear(res);
  if (report_id % 2 == 0) {
    printf("demo_service: GET /reports/%d -> cached (%ld sessions)\n",
           report_id, sessions);
    return 0; /* leaks conn */
  }
  printf("demo_service: GET /reports/%d -> %ld sessions\n", report_id,
         sessions);
  PQfinish(conn);
  return 0;
}

/* The requests that arrive in one tick. 0 or -1. */
NOINLINE int dispatch_requests(PGconn *pool, int tick) {
  if (tick < kUserRequests &&
      handle_user_lookup_request(pool, tick + 1) != 0) {
    return -1;
  }
  if (tick > 0 && tick % kReportEveryTicks == 0 &&
      tick / kReportEveryTicks <= kReportRequests &&
      handle_report_request(tick / kReportEveryTicks) != 0) {
    return -1;
  }
  return 0;
}

static void add_ms(struct timespec *t, long ms) {
  t->tv_nsec += ms * 1000000L;
  while (t->tv_nsec >= 1000000000L) {
    t->tv_nsec -= 1000000000L;
    t->tv_sec++;
  }
}

/* The main loop: kRunTicks ticks of kTickMs on an absolute schedule. */
NOINLINE int run_service(PGconn *pool) {
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (int tick = 0; tick < kRunTicks; tick++) {
    if (pool_heartbeat(pool) != 0 || dispatch_requests(pool, tick) != 0) {
      return -1;
    }
    add_ms(&next, kTickMs);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  return 0;
}

int main(void) {
  /* Keep our lines in order with the agent's stderr even through a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  PGconn *pool = open_pool_connection();
  if (pool == NULL) {
    return 1;
  }
  printf("demo_service: connected to %s@%s:%s (backend pid %d), serving "
         "for %d s\n",
         PQdb(pool), PQhost(pool), PQport(pool), PQbackendPID(pool),
         kRunTicks * kTickMs / 1000);

  int rc = run_service(pool);
  PQfinish(pool);
  if (rc != 0) {
    return 1;
  }
  printf("demo_service: done, %d user and %d report requests served\n",
         kUserRequests, kReportRequests);
  return 0;
}
