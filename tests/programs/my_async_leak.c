/* The non-blocking API, leaking: a feature-flag loader connects, queries and
 * stores the result with the _start/_cont functions, and returns early when
 * it found flags — forgetting both mysql_free_result(_start) and
 * mysql_close(_start). Exactly one mysql.conn and one mysql.result leak (the
 * _start functions call their blocking twins inside the library: no double
 * counting). Usage: my_async_leak */
#include "my_common.h"

__attribute__((noinline)) MYSQL* connect_async(void) {
  MYSQL* conn = mysql_init(NULL);
  if (conn == NULL) return NULL;
  mysql_options(conn, MYSQL_OPT_NONBLOCK, 0);
  MYSQL* ret;
  int status = mysql_real_connect_start(&ret, conn, my_host(), my_user(),
                                        my_password(), my_db(), my_port(),
                                        NULL, 0);
  while (status) {
    status = mysql_real_connect_cont(&ret, conn, my_wait_for(conn, status));
  }
  if (ret == NULL) {
    fprintf(stderr, "connect: %s\n", mysql_error(conn));
    mysql_close(conn);
    return NULL;
  }
  return conn;
}

__attribute__((noinline)) MYSQL_RES* query_async(MYSQL* conn, const char* sql) {
  int err;
  int status = mysql_real_query_start(&err, conn, sql, (unsigned long)strlen(sql));
  while (status) {
    status = mysql_real_query_cont(&err, conn, my_wait_for(conn, status));
  }
  if (err != 0) return NULL;
  MYSQL_RES* res;
  status = mysql_store_result_start(&res, conn);
  while (status) {
    status = mysql_store_result_cont(&res, conn, my_wait_for(conn, status));
  }
  return res;
}

__attribute__((noinline)) int load_feature_flags(void) {
  MYSQL* conn = connect_async();
  if (conn == NULL) return -1;
  MYSQL_RES* res = query_async(conn, "SELECT seq, SLEEP(0.02) FROM seq_1_to_5");
  if (res == NULL) {
    fprintf(stderr, "query: %s\n", mysql_error(conn));
    mysql_close(conn);
    return -1;
  }
  int flags = (int)mysql_num_rows(res);
  if (flags > 0) return flags; /* early return: res and conn leak */
  int status = mysql_free_result_start(res);
  while (status) status = mysql_free_result_cont(res, my_wait_for(conn, status));
  status = mysql_close_start(conn);
  while (status) status = mysql_close_cont(conn, my_wait_for(conn, status));
  return 0;
}

int main(void) {
  int flags = load_feature_flags();
  printf("feature flags: %d\n", flags);
  return flags < 0 ? 2 : 0;
}
