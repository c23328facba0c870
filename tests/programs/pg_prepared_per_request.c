/* A user service on one long-lived PostgreSQL connection, serving
 * "requests" with quiet gaps between them, three ways:
 *
 *   leak     every request prepares its lookup under a new name ("req_17")
 *            with PQprepare and never deallocates it: server memory grows
 *            by one prepared statement per request.
 *   cache    a fixed set of 4 names, prepared on first use (one with
 *            PQsendPrepare) and run by every request with PQexecPrepared
 *            (one with PQsendQueryPrepared); never deallocated.
 *   dealloc  every request prepares "req_N" and deallocates it when done,
 *            spelled three ways (PQexec, PQsendQuery, PQexecParams); then
 *            two statements dropped by DEALLOCATE ALL, and two left on a
 *            connection that is closed (PQfinish) and replaced by a new one.
 *
 * Usage: pg_prepared_per_request leak|cache|dealloc LOG
 *   LOG is the agent's LEAKWATCH_LOG. In leak mode the program serves two
 *   requests 1.5 thresholds apart, waits until LOG has a growth warning,
 *   serves two more and waits for the second (doubling) warning, then
 *   exits holding everything. The other modes rest 1.5 thresholds between
 *   requests (0.3 every other one in cache mode). The threshold is
 *   LEAKWATCH_STMT_THRESHOLD_MS (or LEAKWATCH_THRESHOLD_MS). */
#include <string.h>

#include "pg_common.h"
#include "request_loop.h"

PGconn* g_conn; /* the service's connection, open until exit */

static void expect(PGresult* res, ExecStatusType status, const char* what) {
  if (PQresultStatus(res) != status) {
    fprintf(stderr, "%s: %s", what, PQerrorMessage(g_conn));
    exit(2);
  }
  PQclear(res);
}

/* Runs the prepared statement `name` with `id` as its one parameter. */
static void run_prepared(const char* name, int id) {
  char value[16];
  snprintf(value, sizeof value, "%d", id);
  const char* params[1] = {value};
  PGresult* res = PQexecPrepared(g_conn, name, 1, params, NULL, NULL, 0);
  ExecStatusType status = PQresultStatus(res);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    fprintf(stderr, "execute %s: %s", name, PQerrorMessage(g_conn));
    exit(2);
  }
  PQclear(res);
}

/* Reads every result of the query sent last (the PQsend* calls). */
static void drain(void) {
  PGresult* res;
  while ((res = PQgetResult(g_conn)) != NULL) {
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      fprintf(stderr, "async: %s", PQerrorMessage(g_conn));
      exit(2);
    }
    PQclear(res);
  }
}

/* leak and dealloc modes: the lookup, prepared per request as "req_N". */
__attribute__((noinline)) void prepare_lookup(const char* name) {
  expect(PQprepare(g_conn, name, "SELECT name FROM users WHERE id = $1", 1,
                   NULL),
         PGRES_COMMAND_OK, "prepare");
}

__attribute__((noinline)) void serve_leaking(int request) {
  char name[32];
  snprintf(name, sizeof name, "req_%d", request);
  prepare_lookup(name);
  run_prepared(name, 1 + request % 5); /* and never DEALLOCATE */
}

__attribute__((noinline)) void serve_deallocating(int request) {
  char name[32];
  char sql[64];
  snprintf(name, sizeof name, "req_%d", request);
  prepare_lookup(name);
  run_prepared(name, 1 + request % 5);
  switch (request % 3) {
    case 0:
      snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
      expect(PQexec(g_conn, sql), PGRES_COMMAND_OK, sql);
      break;
    case 1:
      snprintf(sql, sizeof sql, "  deallocate prepare \"%s\";", name);
      if (!PQsendQuery(g_conn, sql)) exit(2);
      drain();
      break;
    default:
      snprintf(sql, sizeof sql, "Deallocate %s", name);
      expect(PQexecParams(g_conn, sql, 0, NULL, NULL, NULL, NULL, 0),
             PGRES_COMMAND_OK, sql);
      break;
  }
}

/* cache mode: the 4 statements, prepared on first use. */
static const char* const kCacheNames[4] = {"get_user", "count_orders",
                                           "touch_user", "add_order"};
static const char* const kCacheSql[4] = {
    "SELECT name FROM users WHERE id = $1",
    "SELECT COUNT(*) FROM orders WHERE user_id = $1",
    "UPDATE users SET seen = seen + 1 WHERE id = $1",
    "INSERT INTO orders (user_id) VALUES ($1)",
};
int g_prepared[4];

__attribute__((noinline)) void prepare_cached(int i) {
  if (g_prepared[i]) return;
  if (i == 3) {
    if (!PQsendPrepare(g_conn, kCacheNames[i], kCacheSql[i], 1, NULL)) exit(2);
    drain();
  } else {
    expect(PQprepare(g_conn, kCacheNames[i], kCacheSql[i], 1, NULL),
           PGRES_COMMAND_OK, "prepare");
  }
  g_prepared[i] = 1;
}

__attribute__((noinline)) void serve_cached(int request) {
  int id = 1 + request % 5;
  for (int i = 0; i < 4; ++i) {
    prepare_cached(i);
    if (i == 2) {
      char value[16];
      snprintf(value, sizeof value, "%d", id);
      const char* params[1] = {value};
      if (!PQsendQueryPrepared(g_conn, kCacheNames[i], 1, params, NULL, NULL,
                               0)) {
        exit(2);
      }
      drain();
    } else {
      run_prepared(kCacheNames[i], id);
    }
  }
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const char* mode = argv[1];
  const char* log = argv[2];
  const long t = rl_threshold_ms();
  g_conn = connect_or_die();
  exec_or_die(g_conn,
              "CREATE TEMPORARY TABLE users (id INT PRIMARY KEY, name TEXT, "
              "seen INT NOT NULL DEFAULT 0)");
  exec_or_die(g_conn, "CREATE TEMPORARY TABLE orders (user_id INT)");
  exec_or_die(g_conn,
              "INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob'), "
              "(3, 'cy'), (4, 'di'), (5, 'ed')");
  if (strcmp(mode, "leak") == 0) {
    /* One call site for every request (one acquisition stack, as a
     * service's request loop has); after a request, the pause or the wait
     * for the agent ("growing" is in both its text and JSON warnings). */
    for (int request = 1; request <= 4; ++request) {
      serve_leaking(request);
      if (request == 1) rl_sleep_ms(t * 3 / 2);
      if (request == 2) rl_wait_for_lines(log, "growing", 1);
      if (request == 4) rl_wait_for_lines(log, "growing", 2);
    }
    printf("served 4 requests, 4 prepared statements left\n");
  } else if (strcmp(mode, "cache") == 0) {
    for (int request = 0; request < 6; ++request) {
      serve_cached(request);
      rl_sleep_ms(request % 2 == 0 ? t * 3 / 2 : t * 3 / 10);
    }
    rl_sleep_ms(t * 3 / 2);
    printf("served 6 requests from 4 prepared statements\n");
  } else {
    for (int request = 0; request < 6; ++request) {
      serve_deallocating(request);
      rl_sleep_ms(t * 3 / 2);
    }
    /* From one call site: growing, if DEALLOCATE ALL and the end of the
     * session did not drop them. */
    static const char* const kNames[4] = {"batch_a", "batch_b", "left_1",
                                          "left_2"};
    for (int i = 0; i < 4; ++i) {
      prepare_lookup(kNames[i]);
      if (i == 1) exec_or_die(g_conn, "DEALLOCATE ALL");
      if (i == 3) {
        PQfinish(g_conn); /* the session ends: its statements with it */
        g_conn = connect_or_die();
      }
      rl_sleep_ms(t * 3 / 2);
    }
    printf("served 6 requests, every statement deallocated\n");
  }
  return 0;
}
