/* A connection opened, used once, then left idle until the agent reports it
 * (the agent's log, LEAKWATCH_LOG, is read to know when), then used again by
 * a query that runs for 300 ms, then finished. The "in use again" note must
 * say how long it rested, not how long the query took.
 * Prints "rested" once the warning was seen, "done" at the end. */
#include "pg_common.h"
#include "request_loop.h"

int main(void) {
  const char* log = getenv("LEAKWATCH_LOG");
  if (log == NULL || log[0] == '\0') {
    fprintf(stderr, "pg_idle_then_query: LEAKWATCH_LOG must be set\n");
    return 64;
  }
  PGconn* conn = connect_or_die();
  exec_or_die(conn, "SELECT 1");
  rl_wait_for_lines(log, "pg.conn 0x", 1);
  printf("rested\n");
  fflush(stdout);
  exec_or_die(conn, "SELECT pg_sleep(0.3)");
  PQfinish(conn);
  printf("done\n");
  return 0;
}
