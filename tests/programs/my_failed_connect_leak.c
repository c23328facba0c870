/* A failed connect leaves a handle that must still be closed: the primary
 * (127.0.0.1 port 1, nothing listens there) refuses, the code falls back to
 * the real server and forgets the handle of the failed attempt. The fallback
 * connection is closed properly. Usage: my_failed_connect_leak */
#include "my_common.h"

__attribute__((noinline)) MYSQL* connect_primary(void) {
  MYSQL* conn = mysql_init(NULL);
  if (conn == NULL) return NULL;
  unsigned int timeout = 2;
  mysql_options(conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  if (mysql_real_connect(conn, "127.0.0.1", my_user(), my_password(), my_db(),
                         1, NULL, 0) == NULL) {
    printf("primary unavailable (error %u)\n", mysql_errno(conn));
    return NULL; /* forgot mysql_close(conn) */
  }
  return conn;
}

int main(void) {
  MYSQL* conn = connect_primary();
  if (conn == NULL) {
    conn = my_connect_or_die();
    printf("using fallback\n");
  }
  my_exec_or_die(conn, "DO 1");
  mysql_close(conn);
  return 0;
}
