/* Prepared statements never closed: an audit writer prepares one statement
 * per row and forgets mysql_stmt_close on two paths — when the prepare fails
 * (odd ids go to an archive table that does not exist) and on an early
 * return after a successful insert (ids 2, 6, 10, ...). Ids 0, 4, 8, ... are
 * closed properly. The connection is kept busy for a while, then closed: the
 * statements outlive it.
 * Usage: my_stmt_leak [rows [busy_ms [hold_ms]]]
 *   rows     rows to write (default 8: leaks 6 statements, closes 2)
 *   busy_ms  after writing, ping the connection every 100 ms for this long
 *   hold_ms  after closing the connection, sleep this long before exiting
 * Prints "my_stmt_leak: closing the connection" on stderr right before
 * mysql_close, so a test can tell warnings before the close from those
 * after it. */
#include <time.h>

#include "my_common.h"

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

__attribute__((noinline)) int write_audit_row(MYSQL* conn, int id) {
  const char* table = id % 2 == 1 ? "audit_log_archive" : "audit_log";
  char sql[128];
  snprintf(sql, sizeof sql, "INSERT INTO %s (id, msg) VALUES (?, ?)", table);
  MYSQL_STMT* stmt = mysql_stmt_init(conn);
  if (stmt == NULL) return -1;
  if (mysql_stmt_prepare(stmt, sql, strlen(sql)) != 0) {
    fprintf(stderr, "audit %d: %s\n", id, mysql_stmt_error(stmt));
    return -1; /* error path: forgot mysql_stmt_close(stmt) */
  }
  char msg[32];
  snprintf(msg, sizeof msg, "event %d", id);
  unsigned long msg_len = strlen(msg);
  MYSQL_BIND bind[2];
  memset(bind, 0, sizeof bind);
  bind[0].buffer_type = MYSQL_TYPE_LONG;
  bind[0].buffer = &id;
  bind[1].buffer_type = MYSQL_TYPE_STRING;
  bind[1].buffer = msg;
  bind[1].buffer_length = msg_len;
  bind[1].length = &msg_len;
  if (mysql_stmt_bind_param(stmt, bind) != 0 || mysql_stmt_execute(stmt) != 0) {
    fprintf(stderr, "audit %d: %s\n", id, mysql_stmt_error(stmt));
    mysql_stmt_close(stmt);
    return -1;
  }
  if (id % 4 == 2) return 1; /* early return: forgot mysql_stmt_close(stmt) */
  mysql_stmt_close(stmt);
  return 1;
}

int main(int argc, char** argv) {
  int rows = argc > 1 ? atoi(argv[1]) : 8;
  long busy_ms = argc > 2 ? atol(argv[2]) : 0;
  long hold_ms = argc > 3 ? atol(argv[3]) : 0;
  MYSQL* conn = my_connect_or_die();
  my_exec_or_die(conn,
                 "CREATE TEMPORARY TABLE audit_log (id INT, msg VARCHAR(64))");
  int written = 0;
  for (int id = 0; id < rows; ++id) {
    if (write_audit_row(conn, id) > 0) ++written;
  }
  printf("wrote %d of %d audit rows\n", written, rows);
  fflush(stdout);
  for (long waited = 0; waited < busy_ms; waited += 100) {
    sleep_ms(100);
    if (mysql_ping(conn) != 0) {
      fprintf(stderr, "ping: %s\n", mysql_error(conn));
      return 2;
    }
    my_exec_or_die(conn, "DO 1"); /* a query: the connection is not idle */
  }
  fprintf(stderr, "my_stmt_leak: closing the connection\n");
  mysql_close(conn);
  if (hold_ms > 0) sleep_ms(hold_ms);
  return 0;
}
