/* Shared by the test programs: connect with the PG* environment (set by
 * scripts/pg-sandbox), or exit 2 with the server's message. */
#ifndef LEAKWATCH_TESTS_PROGRAMS_PG_COMMON_H_
#define LEAKWATCH_TESTS_PROGRAMS_PG_COMMON_H_

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

static inline PGconn* connect_or_die(void) {
  PGconn* conn = PQconnectdb("");
  if (PQstatus(conn) != CONNECTION_OK) {
    fprintf(stderr, "connect failed: %s", PQerrorMessage(conn));
    exit(2);
  }
  return conn;
}

static inline void exec_or_die(PGconn* conn, const char* sql) {
  PGresult* res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_COMMAND_OK &&
      PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, "%s failed: %s", sql, PQerrorMessage(conn));
    exit(2);
  }
  PQclear(res);
}

#endif /* LEAKWATCH_TESTS_PROGRAMS_PG_COMMON_H_ */
