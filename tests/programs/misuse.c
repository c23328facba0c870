/* Misuse the agent must report before the real call (which may abort).
 * Usage: misuse MODE
 *   pg-double-clear     PQclear twice (glibc aborts on the second)
 *   pg-double-cancel    PQfreeCancel twice
 *   pg-use-after-finish PQexec on a finished connection
 *   pg-send-after-finish PQsendQuery on a finished connection
 *   my-double-free      mysql_free_result twice
 *   my-query-after-close mysql_query on a closed connection
 *   unknown             PQclear of a result the agent never saw (a result
 *                       made by libpq's own function looked up with dlsym,
 *                       past the hooks): counted quietly, not reported
 * Each misuse is in a named function so the report's stacks can be checked.
 * The program prints "before" (flushed) just before the misuse. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libpq-fe.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "my_common.h"

static void before(void) {
  printf("before\n");
  fflush(stdout);
}

__attribute__((noinline)) void finish_report(PGresult* res) { PQclear(res); }
__attribute__((noinline)) void close_session(PGconn* conn) { PQfinish(conn); }
__attribute__((noinline)) void drop_cancel(PGcancel* c) { PQfreeCancel(c); }
__attribute__((noinline)) void free_rows(MYSQL_RES* r) { mysql_free_result(r); }
__attribute__((noinline)) void close_mysql(MYSQL* m) { mysql_close(m); }

static PGconn* pg_connect(void) {
  PGconn* conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "connect: %s", PQerrorMessage(conn));
    exit(2);
  }
  return conn;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "pg-double-clear") == 0) {
    PGconn* conn = pg_connect();
    PGresult* res = PQexec(conn, "SELECT 1");
    finish_report(res);
    before();
    PQclear(res);
    PQfinish(conn);
  } else if (strcmp(mode, "pg-double-cancel") == 0) {
    PGconn* conn = pg_connect();
    PGcancel* cancel = PQgetCancel(conn);
    drop_cancel(cancel);
    before();
    PQfreeCancel(cancel);
    PQfinish(conn);
  } else if (strcmp(mode, "pg-use-after-finish") == 0) {
    PGconn* conn = pg_connect();
    close_session(conn);
    before();
    PQclear(PQexec(conn, "SELECT 1"));
  } else if (strcmp(mode, "pg-send-after-finish") == 0) {
    PGconn* conn = pg_connect();
    close_session(conn);
    before();
    PQsendQuery(conn, "SELECT 1");
  } else if (strcmp(mode, "my-double-free") == 0) {
    MYSQL* m = my_connect_or_die();
    mysql_query(m, "SELECT 1");
    MYSQL_RES* r = mysql_store_result(m);
    free_rows(r);
    before();
    mysql_free_result(r);
    mysql_close(m);
  } else if (strcmp(mode, "my-query-after-close") == 0) {
    MYSQL* m = my_connect_or_die();
    close_mysql(m);
    before();
    mysql_query(m, "SELECT 1");
  } else if (strcmp(mode, "unknown") == 0) {
    void* libpq = dlopen("libpq.so.5", RTLD_NOW | RTLD_NOLOAD);
    PGresult* (*make)(PGconn*, ExecStatusType) =
        (PGresult* (*)(PGconn*, ExecStatusType))dlsym(libpq,
                                                      "PQmakeEmptyPGresult");
    if (make == NULL) return 3;
    PGresult* res = make(NULL, PGRES_EMPTY_QUERY);
    before();
    PQclear(res);
    printf("after\n");
  } else {
    return 2;
  }
  return 0;
}
