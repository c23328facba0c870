/* A connection per request, never finished on the early-return path: the
 * request handler returns when the lookup finds nothing, forgetting PQfinish.
 * Usage: pg_conn_leak [requests]   (requests 1, 3, 5, ... leak: N/2 of N) */
#include "pg_common.h"

__attribute__((noinline)) int handle_lookup_request(int id) {
  PGconn* conn = connect_or_die();
  char sql[64];
  snprintf(sql, sizeof sql, "SELECT 1 WHERE %d %% 2 = 0", id);
  PGresult* res = PQexec(conn, sql);
  int found = PQntuples(res) > 0;
  PQclear(res);
  if (!found) return 0; /* early return: conn leaks */
  PQfinish(conn);
  return 1;
}

int main(int argc, char** argv) {
  int requests = argc > 1 ? atoi(argv[1]) : 1;
  int found = 0;
  for (int i = 0; i < requests; ++i) found += handle_lookup_request(i);
  printf("found %d of %d\n", found, requests);
  return 0;
}
