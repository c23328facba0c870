/* Results never freed in a loop: a report job that counts each batch's rows
 * and only frees the result when the batch is empty.
 * Usage: my_store_result_loop N   (leaks exactly N results; the connection
 * is closed) */
#include "my_common.h"

__attribute__((noinline)) long count_rows_in_batch(MYSQL* conn, int batch) {
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT seq FROM seq_1_to_%d", batch);
  if (mysql_query(conn, sql) != 0) return -1;
  MYSQL_RES* res = mysql_store_result(conn);
  if (res == NULL) return -1;
  long rows = (long)mysql_num_rows(res);
  if (rows > 0) return rows; /* forgot mysql_free_result on the common path */
  mysql_free_result(res);
  return 0;
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  MYSQL* conn = my_connect_or_die();
  long total = 0;
  for (int i = 1; i <= n; ++i) total += count_rows_in_batch(conn, i);
  mysql_close(conn);
  printf("rows %ld\n", total);
  return 0;
}
