/* A MariaDB connection opened, used once, then left idle until the agent
 * reports it (the agent's log, LEAKWATCH_LOG, is read to know when), then
 * used again by a query that runs for 300 ms, then closed. The "in use again"
 * note must say how long it rested, not how long the query took.
 * Prints "rested" once the warning was seen, "done" at the end. */
#include <stdio.h>
#include <stdlib.h>

#include "my_common.h"
#include "request_loop.h"

int main(void) {
  const char* log = getenv("LEAKWATCH_LOG");
  if (log == NULL || log[0] == '\0') {
    fprintf(stderr, "my_idle_then_query: LEAKWATCH_LOG must be set\n");
    return 64;
  }
  MYSQL* mysql = my_connect_or_die();
  my_exec_or_die(mysql, "DO 1");
  rl_wait_for_lines(log, "mysql.conn 0x", 1);
  printf("rested\n");
  fflush(stdout);
  my_exec_or_die(mysql, "DO SLEEP(0.3)");
  mysql_close(mysql);
  printf("done\n");
  return 0;
}
