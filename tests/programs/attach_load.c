/* A service under load that leakwatch attaches to and detaches from while it
 * runs: PG_THREADS threads (default 8) on libpq and MY_THREADS (default 8)
 * on libmariadb, each inserting one row per iteration into a table of its
 * own, reading it back, and reconnecting every 50 iterations. The main
 * thread waits for "quit" on stdin; then the threads stop, and each one's
 * row count in the database is checked against what it counted.
 *
 * stdout, at the end: "pg threads N rows R" and "mysql threads N rows R",
 * then "ok" if every query succeeded and every count matched, else
 * "FAILED: ..." lines. Exit status 0 if ok, 1 otherwise, 2 on setup errors.
 *
 * Usage: attach_load [PG_THREADS [MY_THREADS]] */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "my_common.h"

struct worker {
  int index;
  long rows;      /* inserted and confirmed */
  long failures;  /* queries that failed */
  char error[256];
};

static atomic_int stop;

static void fail(struct worker* w, const char* what, const char* message) {
  if (w->failures++ == 0) {
    snprintf(w->error, sizeof w->error, "%s: %s", what, message);
  }
}

static PGconn* pg_connect(struct worker* w) {
  PGconn* conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) fail(w, "connect", PQerrorMessage(conn));
  return conn;
}

static void* pg_worker(void* arg) {
  struct worker* w = arg;
  char sql[160];
  PGconn* conn = pg_connect(w);
  /* Named by pid: no table of an earlier run is in the way. */
  snprintf(sql, sizeof sql, "CREATE TABLE attach_load_pg_%d_%d (i int)",
           getpid(), w->index);
  PGresult* res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    fail(w, "create", PQerrorMessage(conn));
  }
  PQclear(res);
  for (long i = 1; !atomic_load(&stop); ++i) {
    if (i % 50 == 0) {
      PQfinish(conn);
      conn = pg_connect(w);
    }
    snprintf(sql, sizeof sql,
             "INSERT INTO attach_load_pg_%d_%d VALUES (%ld) RETURNING i",
             getpid(), w->index, i);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        atol(PQgetvalue(res, 0, 0)) == i) {
      ++w->rows;
    } else {
      fail(w, "insert", PQerrorMessage(conn));
    }
    PQclear(res);
  }
  snprintf(sql, sizeof sql, "SELECT count(*) FROM attach_load_pg_%d_%d",
           getpid(), w->index);
  res = PQexec(conn, sql);
  long counted = PQresultStatus(res) == PGRES_TUPLES_OK
                     ? atol(PQgetvalue(res, 0, 0))
                     : -1;
  PQclear(res);
  if (counted != w->rows) fail(w, "count", "rows in the table differ");
  snprintf(sql, sizeof sql, "DROP TABLE attach_load_pg_%d_%d", getpid(),
           w->index);
  PQclear(PQexec(conn, sql));
  PQfinish(conn);
  return NULL;
}

static MYSQL* my_open(struct worker* w) {
  MYSQL* mysql = mysql_init(NULL);
  if (mysql_real_connect(mysql, my_host(), my_user(), my_password(), my_db(),
                         my_port(), NULL, 0) == NULL) {
    fail(w, "connect", mysql_error(mysql));
  }
  return mysql;
}

static void* my_worker(void* arg) {
  struct worker* w = arg;
  char sql[160];
  MYSQL* mysql = my_open(w);
  snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS attach_load_my_%d_%d",
           getpid(), w->index);
  if (mysql_query(mysql, sql) != 0) fail(w, "drop", mysql_error(mysql));
  snprintf(sql, sizeof sql, "CREATE TABLE attach_load_my_%d_%d (i int)",
           getpid(), w->index);
  if (mysql_query(mysql, sql) != 0) fail(w, "create", mysql_error(mysql));
  for (long i = 1; !atomic_load(&stop); ++i) {
    if (i % 50 == 0) {
      mysql_close(mysql);
      mysql = my_open(w);
    }
    snprintf(sql, sizeof sql, "INSERT INTO attach_load_my_%d_%d VALUES (%ld)",
             getpid(), w->index, i);
    if (mysql_query(mysql, sql) != 0) {
      fail(w, "insert", mysql_error(mysql));
      continue;
    }
    snprintf(sql, sizeof sql, "SELECT max(i) FROM attach_load_my_%d_%d",
             getpid(), w->index);
    MYSQL_RES* res = mysql_query(mysql, sql) == 0 ? mysql_store_result(mysql)
                                                  : NULL;
    MYSQL_ROW row = res != NULL ? mysql_fetch_row(res) : NULL;
    if (row != NULL && row[0] != NULL && atol(row[0]) == i) {
      ++w->rows;
    } else {
      fail(w, "select", mysql_error(mysql));
    }
    if (res != NULL) mysql_free_result(res);
  }
  snprintf(sql, sizeof sql, "SELECT count(*) FROM attach_load_my_%d_%d",
           getpid(), w->index);
  long counted = -1;
  if (mysql_query(mysql, sql) == 0) {
    MYSQL_RES* res = mysql_store_result(mysql);
    MYSQL_ROW row = res != NULL ? mysql_fetch_row(res) : NULL;
    if (row != NULL && row[0] != NULL) counted = atol(row[0]);
    if (res != NULL) mysql_free_result(res);
  }
  if (counted != w->rows) fail(w, "count", "rows in the table differ");
  snprintf(sql, sizeof sql, "DROP TABLE attach_load_my_%d_%d", getpid(),
           w->index);
  mysql_query(mysql, sql);
  mysql_close(mysql);
  return NULL;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int pg_threads = argc > 1 ? atoi(argv[1]) : 8;
  int my_threads = argc > 2 ? atoi(argv[2]) : 8;
  int n = pg_threads + my_threads;
  pthread_t* threads = calloc((size_t)n, sizeof *threads);
  struct worker* workers = calloc((size_t)n, sizeof *workers);
  if (threads == NULL || workers == NULL || mysql_library_init(0, NULL, NULL)) {
    return 2;
  }
  for (int i = 0; i < n; ++i) {
    workers[i].index = i;
    if (pthread_create(&threads[i], NULL, i < pg_threads ? pg_worker : my_worker,
                       &workers[i]) != 0) {
      return 2;
    }
  }
  printf("running\n");
  char line[64];
  while (fgets(line, sizeof line, stdin) != NULL &&
         strncmp(line, "quit", 4) != 0) {
  }
  atomic_store(&stop, 1);
  long rows[2] = {0, 0};
  int failed = 0;
  for (int i = 0; i < n; ++i) {
    pthread_join(threads[i], NULL);
    rows[i < pg_threads ? 0 : 1] += workers[i].rows;
    if (workers[i].failures > 0) {
      printf("FAILED: thread %d: %ld failures, first %s\n", i,
             workers[i].failures, workers[i].error);
      failed = 1;
    }
  }
  printf("pg threads %d rows %ld\nmysql threads %d rows %ld\n", pg_threads,
         rows[0], my_threads, rows[1]);
  if (!failed) printf("ok\n");
  free(threads);
  free(workers);
  mysql_library_end();
  return failed;
}
