/* Handles that live with a parent, leaked both ways: a libpq cancel handle
 * and a MariaDB statement whose connection was closed (leaked: they outlived
 * their parent; the cancel handle's pointer is dropped too, as a cancel
 * handle still referred to after its connection was closed is a driver's —
 * psycopg2 keeps it until the connection object dies), and one of each whose
 * connection is still open (not past their rule while it lives, however long
 * they are held). Waits until the
 * agent's metrics file shows the leaked pair past the threshold and the
 * whole set held longer than the threshold, copies the file, and exits
 * holding everything, so the exit report can be compared with the copy.
 * Usage: parent_leaks METRICS_FILE COPY_TO */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "my_common.h"
#include "metrics_file.h"
#include "pg_common.h"

__attribute__((noinline)) PGcancel* take_cancel(PGconn* conn) {
  return PQgetCancel(conn);
}

/* Takes a cancel handle and drops it: nothing refers to it any more. */
__attribute__((noinline)) void drop_cancel(PGconn* conn) {
  PGcancel* volatile cancel = PQgetCancel(conn);
  (void)cancel;
}

__attribute__((noinline)) MYSQL_STMT* take_statement(MYSQL* mysql) {
  return mysql_stmt_init(mysql);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Kept in globals: still reachable at exit, so that the exit report judges
 * them by the same rule as the live scans did (a handle no pointer refers to
 * any more is lost, whatever its parent). */
PGcancel* kept_cancel;
MYSQL_STMT* leaked_stmt;
MYSQL_STMT* kept_stmt;

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  PGconn* closed_pg = connect_or_die();
  PGconn* open_pg = connect_or_die();
  MYSQL* closed_my = my_connect_or_die();
  MYSQL* open_my = my_connect_or_die();
  drop_cancel(closed_pg);
  kept_cancel = take_cancel(open_pg);
  leaked_stmt = take_statement(closed_my);
  kept_stmt = take_statement(open_my);
  double start = now_s();
  PQfinish(closed_pg);
  mysql_close(closed_my);
  const char* threshold = getenv("LEAKWATCH_THRESHOLD_MS");
  double hold_s = 2.0 * (threshold != NULL ? atof(threshold) : 1000) / 1000;
  double deadline = start + 30;
  while (!line_has(argv[1],
                   "leakwatch_handles_past_threshold{kind=\"pg.cancel\"",
                   "} 1\n") ||
         !line_has(argv[1],
                   "leakwatch_handles_past_threshold{kind=\"mysql.stmt\"",
                   "} 1\n") ||
         now_s() - start < hold_s) {
    if (now_s() > deadline) {
      fprintf(stderr, "metrics never showed the leaked handles\n");
      return 3;
    }
    usleep(20 * 1000);
  }
  if (!copy_file(argv[1], argv[2])) return 4;
  printf("held %p %p %p\n", (void*)kept_cancel, (void*)leaked_stmt,
         (void*)kept_stmt);
  return 0;
}
