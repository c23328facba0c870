/* Identity changes, then a leak: a long-lived connection with
 * MYSQL_OPT_RECONNECT switches to another database with mysql_change_user
 * (MYSQL_TEST_DB + "_other", created if missing), and is then killed on the
 * server (KILL from an admin connection); the next ping reconnects it —
 * inside the library, which mysql_init()s a struct on its own stack, connects
 * it, mysql_close()s the old state of the user's handle and copies the new
 * one over it. Then mysql_select_db moves it to MYSQL_TEST_DB + "_third".
 * The handle is then never closed. The report must show one mysql.conn with
 * the last database and the new connection id; the library's internal
 * init/close are not the program's.
 * Usage: my_reconnect_leak   prints "connection_id before A after B" */
#include <time.h>

#include "my_common.h"

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

__attribute__((noinline)) MYSQL* open_session(void) {
  MYSQL* conn = mysql_init(NULL);
  my_bool reconnect = 1;
  mysql_options(conn, MYSQL_OPT_RECONNECT, &reconnect);
  return my_connect_handle_or_die(conn);
}

__attribute__((noinline)) void kill_from_admin(unsigned long id) {
  MYSQL* admin = my_connect_or_die();
  char sql[64];
  snprintf(sql, sizeof sql, "KILL CONNECTION %lu", id);
  my_exec_or_die(admin, sql);
  mysql_close(admin);
}

__attribute__((noinline)) void switch_to_other_db(MYSQL* conn) {
  char other[96], sql[128];
  snprintf(other, sizeof other, "%s_other", my_db());
  snprintf(sql, sizeof sql, "CREATE DATABASE IF NOT EXISTS `%s`", other);
  my_exec_or_die(conn, sql);
  if (mysql_change_user(conn, my_user(), my_password(), other) != 0) {
    fprintf(stderr, "change user: %s\n", mysql_error(conn));
    exit(2);
  }
}

__attribute__((noinline)) void select_third_db(MYSQL* conn) {
  char third[96], sql[128];
  snprintf(third, sizeof third, "%s_third", my_db());
  snprintf(sql, sizeof sql, "CREATE DATABASE IF NOT EXISTS `%s`", third);
  my_exec_or_die(conn, sql);
  if (mysql_select_db(conn, third) != 0) {
    fprintf(stderr, "select db: %s\n", mysql_error(conn));
    exit(2);
  }
}

int main(void) {
  MYSQL* conn = open_session();
  my_exec_or_die(conn, "DO 1");
  switch_to_other_db(conn);
  unsigned long before = mysql_thread_id(conn);
  kill_from_admin(before);
  unsigned long after = before;
  for (int i = 0; i < 100 && after == before; ++i) {
    if (mysql_ping(conn) == 0) after = mysql_thread_id(conn);
    if (after == before) sleep_ms(20);
  }
  if (after == before) {
    fprintf(stderr, "did not reconnect: %s\n", mysql_error(conn));
    return 2;
  }
  my_exec_or_die(conn, "DO 1");
  select_third_db(conn);
  printf("connection_id before %lu after %lu\n", before, after);
  return 0; /* conn is never closed */
}
