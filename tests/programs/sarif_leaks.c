/* Leaks and a misuse at marked lines, for tests/integration/sarif_test.py:
 * the test reads the marks from this file (a comment "LEAK <kind>" on the line
 * that acquires the handles of one leak group; "MISUSE <rule>", "RELEASE" and
 * "ACQUIRE" on the lines of a double release, its first release and the
 * acquisition), so lines may move.
 * Usage: sarif_leaks MODE [HOLD_MS]
 *   leak          never clears 2 results from one line and 1 from another,
 *                 never finishes a connection; then waits HOLD_MS (default
 *                 0), so that they are past a threshold below it at exit
 *   double-clear  PQclear twice (glibc may abort on the second)
 *   clean         releases everything */
#include <string.h>
#include <time.h>

#include "pg_common.h"

__attribute__((noinline)) int count_users(PGconn* conn) {
  PGresult* res = PQexec(conn, "SELECT current_user");  // LEAK pg.result
  return PQntuples(res);
}

__attribute__((noinline)) int count_sessions(PGconn* conn) {
  PGresult* res = PQexec(conn, "SELECT count(*) FROM pg_stat_activity");  // LEAK pg.result
  return atoi(PQgetvalue(res, 0, 0));
}

__attribute__((noinline)) PGconn* open_report_connection(void) {
  return PQconnectdb("");  // LEAK pg.conn
}

__attribute__((noinline)) void clear_result(PGresult* res) {
  PQclear(res);  // RELEASE
}

static void hold(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0) {
  }
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  long hold_ms = argc > 2 ? atol(argv[2]) : 0;
  PGconn* conn = connect_or_die();
  if (strcmp(mode, "leak") == 0) {
    /* One call site, one stack: a loop the compiler cannot unroll. */
    volatile int calls = 2;
    int users = 0;
    for (int i = 0; i < calls; ++i) users += count_users(conn);
    int sessions = count_sessions(conn);
    PGconn* report = open_report_connection();
    printf("users %d sessions %d report %d\n", users, sessions,
           PQstatus(report) == CONNECTION_OK);
    fflush(stdout);
    PQfinish(conn);
    hold(hold_ms);
  } else if (strcmp(mode, "double-clear") == 0) {
    PGresult* res = PQexec(conn, "SELECT 1");  // ACQUIRE
    clear_result(res);
    printf("before\n");
    fflush(stdout);
    PQclear(res);  // MISUSE double-release
    PQfinish(conn);
  } else if (strcmp(mode, "clean") == 0) {
    PQclear(PQexec(conn, "SELECT current_user"));
    PQfinish(conn);
  } else {
    return 2;
  }
  return 0;
}
