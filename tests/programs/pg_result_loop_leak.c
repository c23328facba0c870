/* Results never cleared in a loop: a report job that checks each row's
 * status and only clears the result when the check passes.
 * Usage: pg_result_loop_leak N   (leaks exactly N results) */
#include "pg_common.h"

__attribute__((noinline)) int count_rows_in_batch(PGconn* conn, int batch) {
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT g FROM generate_series(1, %d) g", batch);
  PGresult* res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) return -1; /* leaks res too */
  int rows = PQntuples(res);
  if (rows > 0) return rows; /* forgot PQclear on the common path */
  PQclear(res);
  return 0;
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  PGconn* conn = connect_or_die();
  long total = 0;
  for (int i = 1; i <= n; ++i) total += count_rows_in_batch(conn, i);
  PQfinish(conn);
  printf("rows %ld\n", total);
  return 0;
}
