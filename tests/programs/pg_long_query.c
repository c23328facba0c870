/* A connection busy in long queries (2 s each, past a 1 s threshold) is in
 * use, not idle: once through PQexec, once through PQsendQuery followed by a
 * blocking PQgetResult. Everything is released; the agent must say nothing. */
#include "pg_common.h"

__attribute__((noinline)) void run_nightly_rollup(PGconn* conn) {
  PGresult* res = PQexec(conn, "SELECT pg_sleep(2)");
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, "rollup failed: %s", PQerrorMessage(conn));
    exit(2);
  }
  PQclear(res);
}

__attribute__((noinline)) void run_async_rollup(PGconn* conn) {
  if (!PQsendQuery(conn, "SELECT pg_sleep(2)")) exit(2);
  PGresult* res;
  while ((res = PQgetResult(conn)) != NULL) PQclear(res);
}

int main(void) {
  PGconn* conn = connect_or_die();
  run_nightly_rollup(conn);
  run_async_rollup(conn);
  PQfinish(conn);
  printf("rollups done\n");
  return 0;
}
