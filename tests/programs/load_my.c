/* Load for the agent (issue 6, "Load"), the MariaDB twin of load_pg.c:
 * THREADS threads (default 64) each, for SECONDS (default 20), open a real
 * connection (MYSQL_TEST_* environment, scripts/mysql-sandbox), use it for up
 * to OPS_PER_CONN operations of a fixed mix, and close it; then open the next
 * one. Every handle is released: a clean program, so the agent must say
 * nothing but its stats.
 *
 * Every other connection of a thread is mysql_init()ed on a MYSQL struct on
 * the thread's own stack (the same key acquired and released over and over),
 * the others with mysql_init(NULL). The mix:
 *   mysql_query + mysql_store_result, mysql_real_query + mysql_use_result
 *   (read to the end), a prepared statement (mysql_stmt_init, _prepare,
 *   _bind_param, _execute, mysql_stmt_result_metadata, _bind_result, _fetch,
 *   _close) executed twice, mysql_list_dbs, mysql_ping, a query with no
 *   result set (mysql_store_result returns NULL), two result sets from one
 *   multi-statement query (mysql_next_result).
 *
 * Each thread counts what it did; main adds them up after joining and prints
 * one "label: N" line per count (stdout), and the peak RSS (getrusage
 * ru_maxrss, KiB). A connection that fails is still mysql_close()d and
 * counted as opened and closed, and in "connect failures"; the thread waits a
 * little before the next attempt.
 *
 * Runs at nice 19 (beside other tests under ctest -j).
 *
 * Usage: load_my [SECONDS [THREADS]]
 * Exit status: 0; 2 on a setup error. */
#define _GNU_SOURCE
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "my_common.h"

#define OPS_PER_CONN 24

struct counts {
  long conns_opened, conns_closed, connect_failures;
  long results_acquired, results_freed;
  long stmts_opened, stmts_closed, stmt_executions;
  long queries;
  long rows;
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

static void die(const char* what, MYSQL* mysql) {
  fprintf(stderr, "%s: %s\n", what, mysql ? mysql_error(mysql) : "failed");
  exit(2);
}

static void stmt_die(const char* what, MYSQL_STMT* stmt) {
  fprintf(stderr, "%s: %s\n", what, mysql_stmt_error(stmt));
  exit(2);
}

/* Reads every row of a result the program owns, then frees it. */
static void drain_and_free(struct worker* w, MYSQL* mysql, MYSQL_RES* res,
                           const char* what) {
  if (res == NULL) die(what, mysql);
  w->c.results_acquired++;
  MYSQL_ROW row;
  while ((row = mysql_fetch_row(res)) != NULL) w->c.rows++;
  if (mysql_errno(mysql) != 0) die(what, mysql);
  mysql_free_result(res);
  w->c.results_freed++;
}

static void run_stmt(struct worker* w, MYSQL* mysql, int n) {
  MYSQL_STMT* stmt = mysql_stmt_init(mysql);
  if (stmt == NULL) die("mysql_stmt_init", mysql);
  w->c.stmts_opened++;
  static const char kSql[] = "SELECT ? + 1, CONCAT('row ', ?)";
  if (mysql_stmt_prepare(stmt, kSql, sizeof kSql - 1) != 0) {
    stmt_die("mysql_stmt_prepare", stmt);
  }
  w->c.queries++;
  long long in = n;
  MYSQL_BIND params[2];
  memset(params, 0, sizeof params);
  params[0].buffer_type = MYSQL_TYPE_LONGLONG;
  params[0].buffer = &in;
  params[1].buffer_type = MYSQL_TYPE_LONGLONG;
  params[1].buffer = &in;
  if (mysql_stmt_bind_param(stmt, params) != 0) {
    stmt_die("mysql_stmt_bind_param", stmt);
  }
  MYSQL_RES* meta = mysql_stmt_result_metadata(stmt);
  if (meta == NULL) stmt_die("mysql_stmt_result_metadata", stmt);
  w->c.results_acquired++;
  for (int round = 0; round < 2; ++round) {
    if (mysql_stmt_execute(stmt) != 0) stmt_die("mysql_stmt_execute", stmt);
    w->c.queries++;
    w->c.stmt_executions++;
    long long out = 0;
    char text[64];
    unsigned long text_len = 0;
    MYSQL_BIND results[2];
    memset(results, 0, sizeof results);
    results[0].buffer_type = MYSQL_TYPE_LONGLONG;
    results[0].buffer = &out;
    results[1].buffer_type = MYSQL_TYPE_STRING;
    results[1].buffer = text;
    results[1].buffer_length = sizeof text;
    results[1].length = &text_len;
    if (mysql_stmt_bind_result(stmt, results) != 0) {
      stmt_die("mysql_stmt_bind_result", stmt);
    }
    int rc;
    while ((rc = mysql_stmt_fetch(stmt)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
      w->c.rows++;
    }
    if (rc != MYSQL_NO_DATA) stmt_die("mysql_stmt_fetch", stmt);
  }
  mysql_free_result(meta);
  w->c.results_freed++;
  if (mysql_stmt_close(stmt) != 0) die("mysql_stmt_close", mysql);
  w->c.stmts_closed++;
}

static void one_op(struct worker* w, MYSQL* mysql, int op) {
  switch (op % 7) {
    case 0:
      w->c.queries++;
      if (mysql_query(mysql, "SELECT seq FROM seq_1_to_20") != 0) {
        die("mysql_query", mysql);
      }
      drain_and_free(w, mysql, mysql_store_result(mysql), "mysql_store_result");
      break;
    case 1: {
      static const char kSql[] = "SELECT 'use', 1 UNION ALL SELECT 'use', 2";
      w->c.queries++;
      if (mysql_real_query(mysql, kSql, sizeof kSql - 1) != 0) {
        die("mysql_real_query", mysql);
      }
      drain_and_free(w, mysql, mysql_use_result(mysql), "mysql_use_result");
      break;
    }
    case 2:
      run_stmt(w, mysql, op);
      break;
    case 3:
      w->c.queries++;
      drain_and_free(w, mysql, mysql_list_dbs(mysql, NULL), "mysql_list_dbs");
      break;
    case 4:
      w->c.queries++;
      if (mysql_ping(mysql) != 0) die("mysql_ping", mysql);
      break;
    case 5:
      /* No result set: mysql_store_result gives NULL, nothing to track. */
      w->c.queries++;
      if (mysql_query(mysql, "DO 1") != 0) die("mysql_query DO", mysql);
      if (mysql_store_result(mysql) != NULL || mysql_field_count(mysql) != 0) {
        die("mysql_store_result after DO", mysql);
      }
      break;
    case 6: {
      /* Two result sets from one query string (CLIENT_MULTI_STATEMENTS). */
      w->c.queries++;
      if (mysql_query(mysql, "SELECT 1; SELECT 2, 3") != 0) {
        die("mysql_query multi", mysql);
      }
      int status;
      do {
        drain_and_free(w, mysql, mysql_store_result(mysql),
                       "mysql_store_result multi");
        status = mysql_next_result(mysql);
        if (status > 0) die("mysql_next_result", mysql);
      } while (status == 0);
      break;
    }
  }
}

static void* work(void* arg) {
  struct worker* w = arg;
  if (mysql_thread_init() != 0) die("mysql_thread_init", NULL);
  int op = w->index; /* threads start at different points of the mix */
  MYSQL on_stack;
  for (long n = 0; now_s() < w->until_s; ++n) {
    MYSQL* mysql = mysql_init(n % 2 == 0 ? NULL : &on_stack);
    if (mysql == NULL) die("mysql_init", NULL);
    w->c.conns_opened++;
    if (mysql_real_connect(mysql, my_host(), my_user(), my_password(), my_db(),
                           my_port(), NULL, CLIENT_MULTI_STATEMENTS) == NULL) {
      w->c.connect_failures++;
      mysql_close(mysql);
      w->c.conns_closed++;
      struct timespec pause = {0, 20 * 1000 * 1000};
      nanosleep(&pause, NULL);
      continue;
    }
    for (int i = 0; i < OPS_PER_CONN && now_s() < w->until_s; ++i) {
      one_op(w, mysql, op++);
    }
    mysql_close(mysql);
    w->c.conns_closed++;
  }
  mysql_thread_end();
  return NULL;
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 20;
  int threads = argc > 2 ? atoi(argv[2]) : 64;
  if (seconds <= 0 || threads <= 0) {
    fprintf(stderr, "usage: load_my [SECONDS [THREADS]]\n");
    return 2;
  }
  (void)my_port(); /* exits 2 now if MYSQL_TEST_PORT is unset */
  if (mysql_library_init(0, NULL, NULL) != 0) {
    fprintf(stderr, "mysql_library_init failed\n");
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
    t.results_freed += c->results_freed;
    t.stmts_opened += c->stmts_opened;
    t.stmts_closed += c->stmts_closed;
    t.stmt_executions += c->stmt_executions;
    t.queries += c->queries;
    t.rows += c->rows;
  }
  free(workers);
  mysql_library_end();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("threads: %d\n", threads);
  printf("seconds: %g\n", seconds);
  printf("connections opened: %ld\n", t.conns_opened);
  printf("connections closed: %ld\n", t.conns_closed);
  printf("connect failures: %ld\n", t.connect_failures);
  printf("results acquired: %ld\n", t.results_acquired);
  printf("results freed: %ld\n", t.results_freed);
  printf("statements opened: %ld\n", t.stmts_opened);
  printf("statements closed: %ld\n", t.stmts_closed);
  printf("statement executions: %ld\n", t.stmt_executions);
  printf("queries: %ld\n", t.queries);
  printf("rows: %ld\n", t.rows);
  printf("peak rss kib: %ld\n", ru.ru_maxrss);
  /* Out before exit: a library's destructor that hangs at exit (seen under
   * ThreadSanitizer, tests/load/run_sanitizers.sh) must not take it along. */
  fflush(stdout);
  return 0;
}
