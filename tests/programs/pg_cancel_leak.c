/* A cancel handle taken for a query timeout and never freed when the query
 * finishes in time. */
#include "pg_common.h"

__attribute__((noinline)) int run_with_timeout(PGconn* conn, const char* sql) {
  PGcancel* cancel = PQgetCancel(conn); /* kept for a watchdog; never freed */
  PGresult* res = PQexec(conn, sql);
  int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
  PQclear(res);
  (void)cancel;
  return ok;
}

int main(void) {
  PGconn* conn = connect_or_die();
  int ok = run_with_timeout(conn, "SELECT 1");
  PQfinish(conn);
  printf("ok %d\n", ok);
  return 0;
}
