/* A connection per request, never closed on the early-return path: the
 * request handler returns when the lookup finds nothing, forgetting
 * mysql_close. Usage: my_conn_leak [requests]
 * (requests 1, 3, 5, ... leak: N/2 of N). */
#include "my_common.h"

__attribute__((noinline)) int handle_lookup_request(int id) {
  MYSQL* conn = my_connect_or_die();
  char sql[64];
  snprintf(sql, sizeof sql, "SELECT 1 FROM DUAL WHERE %d %% 2 = 0", id);
  my_exec_or_die(conn, sql);
  MYSQL_RES* res = mysql_store_result(conn);
  int found = res != NULL && mysql_num_rows(res) > 0;
  mysql_free_result(res);
  if (!found) return 0; /* early return: conn leaks */
  mysql_close(conn);
  return 1;
}

int main(int argc, char** argv) {
  int requests = argc > 1 ? atoi(argv[1]) : 1;
  int found = 0;
  for (int i = 0; i < requests; ++i) found += handle_lookup_request(i);
  printf("found %d of %d\n", found, requests);
  return 0;
}
