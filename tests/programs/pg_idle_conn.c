/* Two connections: one used once and then left idle (a leak by the idle
 * rule), one used every 100 ms for 3 s (a busy pool connection: not a leak).
 * Both are finished at the end. */
#include <time.h>
#include <unistd.h>

#include "pg_common.h"

__attribute__((noinline)) PGconn* open_idle_conn(void) {
  PGconn* conn = connect_or_die();
  exec_or_die(conn, "SELECT 1");
  return conn;
}

__attribute__((noinline)) PGconn* open_busy_conn(void) {
  return connect_or_die();
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
  PGconn* idle = open_idle_conn();
  PGconn* busy = open_busy_conn();
  double end = now_s() + 3.0;
  int queries = 0;
  while (now_s() < end) {
    exec_or_die(busy, "SELECT 1");
    ++queries;
    usleep(100 * 1000);
  }
  PQfinish(busy);
  PQfinish(idle);
  printf("busy queries %d\n", queries);
  return 0;
}
